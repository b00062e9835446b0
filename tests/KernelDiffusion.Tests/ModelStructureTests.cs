using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Tests;

/// <summary>Each reference configuration builds a model whose state_dict names and shapes equal the listing that
/// openai/guided-diffusion produces (tests/Reference/*.params.txt, copied from shared/reference), in order.</summary>
[Collection("device")]
public sealed class ModelStructureTests(DeviceFixture fx)
{
    public static readonly ModelConfig FmnistUnet = new()
    {
        ImageSize = 28, InChannels = 1, ModelChannels = 64, OutChannels = 1, NumResBlocks = 2, AttentionResolutions = [2, 4],
        Dropout = 0.1, ChannelMult = [1, 2, 2], NumClasses = 11, NumHeads = 4, NumHeadChannels = 32, UseScaleShiftNorm = true,
        ResblockUpdown = true, UseNewAttentionOrder = true,
    };

    public static readonly ModelConfig FmnistClassifier = new()
    {
        Model = "classifier", ImageSize = 28, InChannels = 1, ModelChannels = 32, OutChannels = 10, NumResBlocks = 2,
        AttentionResolutions = [2, 4], ChannelMult = [1, 2, 2], NumHeadChannels = 32, UseScaleShiftNorm = true, ResblockUpdown = true,
        Pool = "attention",
    };

    public static readonly ModelConfig Adm64Unet = new()
    {
        ImageSize = 64, InChannels = 3, ModelChannels = 192, OutChannels = 6, NumResBlocks = 3, AttentionResolutions = [2, 4, 8],
        Dropout = 0.1, ChannelMult = [1, 2, 3, 4], NumClasses = 1000, NumHeadChannels = 64, UseScaleShiftNorm = true,
        ResblockUpdown = true, UseNewAttentionOrder = true,
    };

    public static readonly ModelConfig Adm64Classifier = new()
    {
        Model = "classifier", ImageSize = 64, InChannels = 3, ModelChannels = 128, OutChannels = 1000, NumResBlocks = 4,
        AttentionResolutions = [2, 4, 8], ChannelMult = [1, 2, 3, 4], NumHeadChannels = 64, UseScaleShiftNorm = true,
        ResblockUpdown = true, Pool = "attention",
    };

    static (List<string> Lines, long Total) Listing(string name)
    {
        var lines = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Reference", name + ".params.txt"));
        long total = long.Parse(lines.First(l => l.StartsWith("# total parameters:")).Split(':')[1]);
        return (lines.Where(l => l.Length > 0 && !l.StartsWith('#')).ToList(), total);
    }

    [Theory]
    [InlineData("fmnist_unet")]
    [InlineData("fmnist_classifier")]
    [InlineData("adm64_unet")]
    [InlineData("adm64_classifier")]
    public void ParameterNamesAndShapesMatchTheReference(string name)
    {
        var config = name switch
        {
            "fmnist_unet" => FmnistUnet,
            "fmnist_classifier" => FmnistClassifier,
            "adm64_unet" => Adm64Unet,
            _ => Adm64Classifier,
        };
        using Module model = config.IsClassifier ? new Classifier(fx.Device, config) : new UNet(fx.Device, config);
        var ours = model.NamedParameters().Select(p => $"{p.Name}\t{string.Join("x", p.Param.Shape)}").ToList();
        var (want, total) = Listing(name);
        for (int i = 0; i < Math.Min(ours.Count, want.Count); i++)
            Assert.True(want[i] == ours[i], $"{name}: parameter {i} is '{ours[i]}', the reference has '{want[i]}'");
        Assert.Equal(want.Count, ours.Count);
        Assert.Equal(total, model.ParameterCount);
    }

    [Fact]
    public void ConfigurationRoundTripsThroughJson()
    {
        foreach (var c in new[] { FmnistUnet, FmnistClassifier, Adm64Unet, Adm64Classifier })
        {
            var back = ModelConfig.FromJson(c.ToJson());
            Assert.Equal(c.ToJson(), back.ToJson());
        }
    }

    [Theory]
    [InlineData("{\"model_channel\": 64}", "unknown setting 'model_channel'")]
    [InlineData("{\"attention_resolutions\": [16, 8], \"channel_mult\": [1, 2, 2]}", "attention_resolutions: rate 16 is never reached")]
    [InlineData("{\"model_channels\": 40, \"channel_mult\": [1, 2]}", "model_channels 40 x channel_mult 1 = 40 channels do not divide into 32 groups")]
    [InlineData("{\"model_channels\": 64, \"channel_mult\": [1, 2], \"attention_resolutions\": [2], \"num_head_channels\": 48}", "num_head_channels 48 does not divide the 128 channels at rate 2")]
    [InlineData("{\"num_heads\": 3, \"channel_mult\": [1]}", "num_heads 3")]
    [InlineData("{\"dropout\": 1.5}", "dropout 1.5 is outside [0, 1)")]
    [InlineData("{\"model\": \"classifier\", \"pool\": \"attention\", \"channel_mult\": [1]}", "pool 'attention' needs num_head_channels")]
    [InlineData("{\"num_res_blocks\": \"two\"}", "setting 'num_res_blocks' has the wrong type")]
    [InlineData("[1, 2]", "not a JSON object")]
    public void BadConfigurationsAreRefusedNamingTheSetting(string json, string message)
    {
        var e = Assert.Throws<KdException>(() => ModelConfig.FromJson(json, "model.json"));
        Assert.Contains(message, e.Message);
        Assert.StartsWith("model.json: ", e.Message);
    }
}
