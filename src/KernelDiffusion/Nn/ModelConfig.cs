using System.Text.Json;
using System.Text.Json.Nodes;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Nn;

/// <summary>The hyper-parameters of guided-diffusion's UNetModel ("unet") and EncoderUNetModel ("classifier"), under
/// their constructor-argument names. attention_resolutions holds downsample rates (1, 2, 4, ...), as the
/// constructors take them. JSON is the same names in snake_case plus "model"; unknown keys are refused.</summary>
public sealed record ModelConfig
{
    public string Model { get; init; } = "unet";
    public int ImageSize { get; init; } = 28;
    public int InChannels { get; init; } = 1;
    public int ModelChannels { get; init; } = 64;
    public int OutChannels { get; init; } = 1;
    public int NumResBlocks { get; init; } = 2;
    public int[] AttentionResolutions { get; init; } = [];
    public double Dropout { get; init; }
    public int[] ChannelMult { get; init; } = [1, 2, 4, 8];
    public bool ConvResample { get; init; } = true;
    /// <summary>Label-embedding rows (classes, plus one null label for classifier-free guidance); 0: unconditional.</summary>
    public int NumClasses { get; init; }
    public int NumHeads { get; init; } = 1;
    public int NumHeadChannels { get; init; } = -1;
    public int NumHeadsUpsample { get; init; } = -1;
    public bool UseScaleShiftNorm { get; init; }
    public bool ResblockUpdown { get; init; }
    public bool UseNewAttentionOrder { get; init; }
    /// <summary>Classifier head: "adaptive" or "attention".</summary>
    public string Pool { get; init; } = "adaptive";

    public bool IsClassifier => Model == "classifier";

    static readonly string[] Keys =
    [
        "model", "image_size", "in_channels", "model_channels", "out_channels", "num_res_blocks", "attention_resolutions", "dropout",
        "channel_mult", "conv_resample", "num_classes", "num_heads", "num_head_channels", "num_heads_upsample", "use_scale_shift_norm",
        "resblock_updown", "use_new_attention_order", "pool",
    ];

    public string ToJson()
    {
        var o = new JsonObject
        {
            ["model"] = Model, ["image_size"] = ImageSize, ["in_channels"] = InChannels, ["model_channels"] = ModelChannels,
            ["out_channels"] = OutChannels, ["num_res_blocks"] = NumResBlocks,
            ["attention_resolutions"] = new JsonArray(AttentionResolutions.Select(v => (JsonNode)v).ToArray()),
            ["dropout"] = Dropout, ["channel_mult"] = new JsonArray(ChannelMult.Select(v => (JsonNode)v).ToArray()),
            ["conv_resample"] = ConvResample, ["num_classes"] = NumClasses, ["num_heads"] = NumHeads,
            ["num_head_channels"] = NumHeadChannels, ["num_heads_upsample"] = NumHeadsUpsample,
            ["use_scale_shift_norm"] = UseScaleShiftNorm, ["resblock_updown"] = ResblockUpdown,
            ["use_new_attention_order"] = UseNewAttentionOrder, ["pool"] = Pool,
        };
        return o.ToJsonString();
    }

    /// <summary>Reads, parses and validates a configuration file.</summary>
    public static ModelConfig FromFile(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new KdException($"{path}: cannot read the file ({e.Message})"); }
        return FromJson(text, path);
    }

    /// <summary>Parses and validates; <paramref name="source"/> names the file in messages.</summary>
    public static ModelConfig FromJson(string json, string source = "config")
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new KdException($"{source}: the configuration is not a JSON object"); }
        catch (JsonException e) { throw new KdException($"{source}: the configuration is not valid JSON ({e.Message})"); }
        foreach (var (key, _) in o)
            if (!Keys.Contains(key))
                throw new KdException($"{source}: unknown setting '{key}' (known: {string.Join(", ", Keys)})");
        var c = new ModelConfig();
        T Get<T>(string key, T fallback)
        {
            if (!o.TryGetPropertyValue(key, out var node) || node == null) return fallback;
            try { return node.Deserialize<T>()!; }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
            {
                throw new KdException($"{source}: setting '{key}' has the wrong type ({node.ToJsonString()})");
            }
        }
        c = c with
        {
            Model = Get("model", c.Model), ImageSize = Get("image_size", c.ImageSize), InChannels = Get("in_channels", c.InChannels),
            ModelChannels = Get("model_channels", c.ModelChannels), OutChannels = Get("out_channels", c.OutChannels),
            NumResBlocks = Get("num_res_blocks", c.NumResBlocks), AttentionResolutions = Get("attention_resolutions", c.AttentionResolutions),
            Dropout = Get("dropout", c.Dropout), ChannelMult = Get("channel_mult", c.ChannelMult), ConvResample = Get("conv_resample", c.ConvResample),
            NumClasses = Get("num_classes", c.NumClasses), NumHeads = Get("num_heads", c.NumHeads),
            NumHeadChannels = Get("num_head_channels", c.NumHeadChannels), NumHeadsUpsample = Get("num_heads_upsample", c.NumHeadsUpsample),
            UseScaleShiftNorm = Get("use_scale_shift_norm", c.UseScaleShiftNorm), ResblockUpdown = Get("resblock_updown", c.ResblockUpdown),
            UseNewAttentionOrder = Get("use_new_attention_order", c.UseNewAttentionOrder), Pool = Get("pool", c.Pool),
        };
        c.Validate(source);
        return c;
    }

    /// <summary>Heads of an attention block of this width (num_head_channels wins when set).</summary>
    public int HeadsFor(int channels, bool upsample = false)
        => NumHeadChannels != -1 ? channels / NumHeadChannels : upsample && NumHeadsUpsample != -1 ? NumHeadsUpsample : NumHeads;

    /// <summary>Refuses a configuration that the models could not build or run, naming the setting.</summary>
    public void Validate(string source = "config")
    {
        void Fail(string msg) => throw new KdException($"{source}: {msg}");
        if (Model is not ("unet" or "classifier")) Fail($"model '{Model}' is neither 'unet' nor 'classifier'");
        if (ImageSize < 1 || InChannels < 1 || ModelChannels < 1 || OutChannels < 1 || NumResBlocks < 1)
            Fail("image_size, in_channels, model_channels, out_channels and num_res_blocks must be positive");
        if (ChannelMult.Length == 0 || ChannelMult.Any(m => m < 1)) Fail($"channel_mult [{string.Join(",", ChannelMult)}] must be positive multipliers");
        if (Dropout is < 0 or >= 1) Fail($"dropout {Dropout} is outside [0, 1)");
        if (NumClasses < 0) Fail($"num_classes {NumClasses} is negative");
        if (IsClassifier && Pool is not ("adaptive" or "attention")) Fail($"pool '{Pool}' is neither 'adaptive' nor 'attention'");
        if (NumHeadChannels == -1 && NumHeads < 1) Fail($"num_heads {NumHeads} must be positive when num_head_channels is -1");
        if (NumHeadChannels is 0 or < -1) Fail($"num_head_channels {NumHeadChannels} must be positive or -1");
        int levels = ChannelMult.Length;
        var reached = Enumerable.Range(0, levels).Select(l => 1 << l).ToArray();
        foreach (var ds in AttentionResolutions)
            if (!reached.Contains(ds))
                Fail($"attention_resolutions: rate {ds} is never reached (the {levels} levels reach rates {string.Join(", ", reached)}; rates, not resolutions)");
        for (int l = 0; l < levels; l++)
        {
            int ch = ModelChannels * ChannelMult[l];
            if (ch % GroupNormLayer.Groups != 0)
                Fail($"model_channels {ModelChannels} x channel_mult {ChannelMult[l]} = {ch} channels do not divide into {GroupNormLayer.Groups} groups");
            bool attends = AttentionResolutions.Contains(1 << l) || (l == levels - 1);   // the middle block always attends
            if (!attends) continue;
            if (NumHeadChannels != -1 && ch % NumHeadChannels != 0)
                Fail($"num_head_channels {NumHeadChannels} does not divide the {ch} channels at rate {1 << l}");
            if (NumHeadChannels == -1 && (ch % NumHeads != 0 || (NumHeadsUpsample > 0 && ch % NumHeadsUpsample != 0)))
                Fail($"num_heads {NumHeads} (num_heads_upsample {NumHeadsUpsample}) does not divide the {ch} channels at rate {1 << l}");
        }
        if (IsClassifier && Pool == "attention" && (NumHeadChannels < 1 || ModelChannels * ChannelMult[^1] % NumHeadChannels != 0))
            Fail($"pool 'attention' needs num_head_channels dividing the final {ModelChannels * ChannelMult[^1]} channels (have {NumHeadChannels})");
        if (FinalSize < 1) Fail($"image_size {ImageSize} is too small for {levels} levels");
    }

    /// <summary>Spatial size after the last downsampling (conv stride 2 pad 1 rounds up, the average pool down).</summary>
    public int FinalSize
    {
        get
        {
            int s = ImageSize;
            for (int l = 0; l < ChannelMult.Length - 1; l++) s = ResblockUpdown || !ConvResample ? s / 2 : (s + 1) / 2;
            return s;
        }
    }
}
