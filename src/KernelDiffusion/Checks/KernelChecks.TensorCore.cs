using ILGPU;
using ILGPU.Runtime;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Checks;

public static partial class KernelChecks
{
    /// <summary>GEMM v5 and v16-v21 and conv v6 and v7 (tensor cores) at the kernel level. GEMM: every transpose pair at
    /// a ragged shape inside one 64 x 64 tile, a shared operand with alpha and beta, attention's two-level batches, and
    /// ragged shapes past one tile (v16's 128 x 128 too) in both directions.
    /// <para>The reference is float64 on the inputs rounded to tf32 (what the tensor cores multiply; truncated for v17
    /// and v18, which give them fp32 values), so the tolerance stays the forward one; the note gives the error against
    /// the unrounded inputs too (tf32's own, about 1e-4). v21 (fp32 by three tf32 mma) is held to float64 on the
    /// unrounded inputs instead (Tf32x3GemmCase).</para>
    /// <para>Where the device cannot run their groups of 32-lane warps (128 threads; v16-v18's 256), as the CPU
    /// accelerator kd opens cannot, the case runs on a CPU accelerator built with 32-lane warps, where each mma is
    /// emulated through shared memory (see <see cref="TensorCore"/>), and says so.</para></summary>
    static void AddTensorCore(List<Case> list)
    {
        GemmVersion[] wide = [GemmVersion.V16PipelinedTf32, GemmVersion.V17AsyncTf32, GemmVersion.V18PackedTf32];   // 128 x 128 tiles
        foreach (var version in wide.Prepend(GemmVersion.V5Tf32))
        {
            string tag = $"gemm.v{(int)version}";
            foreach (var (ta, tb) in new[] { (0, 0), (0, 1), (1, 0), (1, 1) })
                list.Add(Tf32GemmCase($"{tag}.{(ta == 1 ? "t" : "n")}{(tb == 1 ? "t" : "n")}", version,
                    new GemmShape { Batch = 2, M = 17, N = 19, K = 23, TransA = ta, TransB = tb, StrideA = 17 * 23, StrideB = 23 * 19, StrideC = 17 * 19, Alpha = 1 }));
            list.Add(Tf32GemmCase($"{tag}.alpha_beta_shared_b", version,
                new GemmShape { Batch = 3, M = 9, N = 11, K = 13, StrideA = 9 * 13, StrideB = 0, StrideC = 9 * 11, Alpha = -0.7f, Beta = 1.3f }));
            list.Add(Tf32GemmCase($"{tag}.multi_tile", version, new GemmShape { Batch = 1, M = 70, N = 67, K = 33, Alpha = 1 }));
            // Attention's two-level batches: 2 samples x 2 heads, heads StrideX apart and samples OuterX (with a gap).
            list.Add(Tf32GemmCase($"{tag}.two_level_batch", version, new GemmShape
            {
                Batch = 4, M = 9, N = 10, K = 7, TransB = 1, Alpha = 1, Split = 2,
                StrideA = 9 * 7, OuterA = 3 * 9 * 7, StrideB = 10 * 7, OuterB = 3 * 10 * 7, StrideC = 9 * 10, OuterC = 2 * 9 * 10,
            }));
            list.Add(Tf32GemmCase($"{tag}.multi_tile.tt", version,
                new GemmShape { Batch = 2, M = 19, N = 130, K = 41, TransA = 1, TransB = 1, StrideA = 19 * 41, StrideB = 41 * 130, StrideC = 19 * 130, Alpha = 0.5f, Beta = -1.5f }));
        }
        // v16's 128 x 128 tiles: past one in both directions, with k 2.5 stages of 16 (the last one's second chunk
        // wholly past K), A transposed (k not fastest) and B not.
        foreach (var version in wide)
            list.Add(Tf32GemmCase($"gemm.v{(int)version}.multi_tile_128", version,
                new GemmShape { Batch = 1, M = 140, N = 135, K = 40, TransA = 1, Alpha = 1 }));
        // v16's and v17's warp tiles wholly inside C store straight from the accumulators' registers on CUDA, the others
        // value by value: both kinds here (N = 96 leaves the last column of warps partly outside, M = 130 the second row
        // of tiles), in two matrices, with alpha.
        foreach (var version in wide)
            list.Add(Tf32GemmCase($"gemm.v{(int)version}.stores_inside", version,
                new GemmShape { Batch = 2, M = 130, N = 96, K = 24, StrideA = 130 * 24, StrideB = 24 * 96, StrideC = 130 * 96, Alpha = 0.5f }));
        // v17's and v18's three stages over 7 of k (one past its three buffers twice): the buffers' turns, and the empty groups
        // committed past the last stage.
        foreach (var version in wide.Where(v => v != GemmVersion.V16PipelinedTf32))
            list.Add(Tf32GemmCase($"gemm.v{(int)version}.seven_stages", version,
                new GemmShape { Batch = 2, M = 33, N = 40, K = 100, TransB = 1, StrideA = 33 * 100, StrideB = 40 * 100, StrideC = 33 * 40, Alpha = 1 }));

        // v19's 16-byte copies, which need every operand row 16-byte aligned: rows of 23 (v19 runs v17's copies); the
        // stores' case above, aligned; past one 128 x 128 tile in both directions with N's last copy of a row at its edge
        // (N = 132), k 2.5 stages, in all four transpose pairs (row-major and k-major tiles for each operand); seven
        // stages; two-level batches; a shared B with alpha and beta. Each ".vector." case (ownCopies) fails if v19's own
        // copies did not run.
        list.Add(Tf32GemmCase("gemm.v19.nt", GemmVersion.V19VectorTf32,
            new GemmShape { Batch = 2, M = 17, N = 19, K = 23, TransB = 1, StrideA = 17 * 23, StrideB = 23 * 19, StrideC = 17 * 19, Alpha = 1 }));
        // v20 (v19 reading a row-major A, and a row-major B, by ldmatrix) at the same cases, emulated off CUDA lane by
        // lane; where A is transposed it runs v19, which two small cases check (v19's own are the ".t?" ones).
        foreach (var (version, tag) in new[] { (GemmVersion.V19VectorTf32, "v19.vector"), (GemmVersion.V20LdmatrixTf32, "v20.ldmatrix") })
        {
            list.Add(Tf32GemmCase($"gemm.{tag}.stores_inside", version,
                new GemmShape { Batch = 2, M = 130, N = 96, K = 24, StrideA = 130 * 24, StrideB = 24 * 96, StrideC = 130 * 96, Alpha = 0.5f }, ownCopies: true));
            foreach (var (ta, tb) in new[] { (0, 0), (0, 1), (1, 0), (1, 1) })
                list.Add(version == GemmVersion.V20LdmatrixTf32 && ta == 1
                    ? Tf32GemmCase($"gemm.{tag}.a_transposed.t{(tb == 1 ? "t" : "n")}", version,
                        new GemmShape { Batch = 2, M = 12, N = 16, K = 8, TransA = 1, TransB = tb, StrideA = 12 * 8, StrideB = 8 * 16, StrideC = 12 * 16, Alpha = 1 },
                        ownCopies: true)
                    : Tf32GemmCase($"gemm.{tag}.multi_tile_128.{(ta == 1 ? "t" : "n")}{(tb == 1 ? "t" : "n")}", version,
                        new GemmShape { Batch = 2, M = 140, N = 132, K = 40, TransA = ta, TransB = tb, StrideA = 140 * 40, StrideB = 40 * 132, StrideC = 140 * 132, Alpha = 1 },
                        ownCopies: true));
            list.Add(Tf32GemmCase($"gemm.{tag}.seven_stages", version,
                new GemmShape { Batch = 2, M = 33, N = 40, K = 100, StrideA = 33 * 100, StrideB = 100 * 40, StrideC = 33 * 40, Alpha = 1 }, ownCopies: true));
            list.Add(Tf32GemmCase($"gemm.{tag}.two_level_batch", version, new GemmShape
            {
                Batch = 4, M = 9, N = 12, K = 8, Alpha = 1, Split = 2,
                StrideA = 9 * 8, OuterA = 3 * 9 * 8, StrideB = 8 * 12, OuterB = 3 * 8 * 12, StrideC = 9 * 12, OuterC = 2 * 9 * 12,
            }, ownCopies: true));
            list.Add(Tf32GemmCase($"gemm.{tag}.alpha_beta_shared_b", version,
                new GemmShape { Batch = 3, M = 9, N = 12, K = 16, StrideA = 9 * 16, StrideB = 0, StrideC = 9 * 12, Alpha = -0.7f, Beta = 1.3f }, ownCopies: true));
        }
        // v22 (v20 and v19 on bulk copies) and v23 (their copies without the zero-fill operand) take their own copies only
        // where a whole 128 x 128 tile and a stage's 16 values of k lie inside; elsewhere they copy as v20 does, which the
        // cases above check. 2 batches of 200 x 136, K 56 (three stages of their own copies, then a tail of 8 copied as
        // v20 copies it), so of each batch's four tiles one lies inside; the CPU device's first group takes both inside
        // tiles, so v22's barriers' phases carry from tile to tile, and a group's edge tiles and inside tiles alternate.
        // v22 in all four transpose pairs (each spreads a different mix of row-major and k-major copies over the warps);
        // v23 at NN and TT, which between them copy each operand both row-major and k-major.
        foreach (var (version, tag) in new[] { (GemmVersion.V22BulkTf32, "v22.bulk"), (GemmVersion.V23PlainCopyTf32, "v23.plain") })
            foreach (var (ta, tb) in new[] { (0, 0), (0, 1), (1, 0), (1, 1) })
                if (version == GemmVersion.V22BulkTf32 || ta == tb)
                    list.Add(Tf32GemmCase($"gemm.{tag}.tiles.{(ta == 1 ? "t" : "n")}{(tb == 1 ? "t" : "n")}", version,
                        new GemmShape { Batch = 2, M = 200, N = 136, K = 56, TransA = ta, TransB = tb, StrideA = 200 * 56, StrideB = 56 * 136, StrideC = 200 * 136, Alpha = 1 },
                        ownCopies: true));
        // v24 (v22 with stages of 32 values of k; A row-major, so NN and NT): 2 batches of 136 x 132, K 104: in each batch's
        // inside tile three stages by bulk copies, so every buffer's barrier is used, then a tail of 8 by cp.async in two
        // zero-filled halves; the CPU device's first group takes both inside tiles, so the phases carry from tile to tile.
        foreach (int tb in new[] { 0, 1 })
            list.Add(Tf32GemmCase($"gemm.v24.bulk_k32.tiles.{(tb == 1 ? "nt" : "nn")}", GemmVersion.V24BulkK32Tf32,
                new GemmShape { Batch = 2, M = 136, N = 132, K = 104, TransB = tb, StrideA = 136 * 104, StrideB = 104 * 132, StrideC = 136 * 132, Alpha = 1 },
                ownCopies: true));

        // v21 (fp32 by three tf32 mma) against float64 on the fp32 operands at the fp32 tolerance: past one 128 x 128 tile
        // in both directions (N's last copy of a row at its edge, k 2.5 stages) untransposed, the other three transpose
        // pairs inside one tile (the emulation takes three products a step: the suite's time), seven stages, a shared B
        // with alpha and beta, two-level batches; with rows of 23 floats it runs the fp32 default, which one case checks.
        list.Add(Tf32x3GemmCase("gemm.v21.tf32x3.multi_tile_128.nn",
            new GemmShape { Batch = 2, M = 140, N = 132, K = 40, StrideA = 140 * 40, StrideB = 40 * 132, StrideC = 140 * 132, Alpha = 1 }));
        foreach (var (ta, tb) in new[] { (0, 1), (1, 0), (1, 1) })
            list.Add(Tf32x3GemmCase($"gemm.v21.tf32x3.{(ta == 1 ? "t" : "n")}{(tb == 1 ? "t" : "n")}",
                new GemmShape { Batch = 2, M = 12, N = 16, K = 24, TransA = ta, TransB = tb, StrideA = 12 * 24, StrideB = 24 * 16, StrideC = 12 * 16, Alpha = 1 }));
        list.Add(Tf32x3GemmCase("gemm.v21.tf32x3.seven_stages",
            new GemmShape { Batch = 2, M = 33, N = 40, K = 100, StrideA = 33 * 100, StrideB = 100 * 40, StrideC = 33 * 40, Alpha = 1 }));
        list.Add(Tf32x3GemmCase("gemm.v21.tf32x3.alpha_beta_shared_b",
            new GemmShape { Batch = 3, M = 9, N = 12, K = 16, TransB = 1, StrideA = 9 * 16, StrideB = 0, StrideC = 9 * 12, Alpha = -0.7f, Beta = 1.3f }));
        list.Add(Tf32x3GemmCase("gemm.v21.tf32x3.two_level_batch", new GemmShape
        {
            Batch = 4, M = 12, N = 12, K = 8, TransA = 1, Alpha = 1, Split = 2,
            StrideA = 12 * 8, OuterA = 3 * 12 * 8, StrideB = 8 * 12, OuterB = 3 * 8 * 12, StrideC = 12 * 12, OuterC = 2 * 12 * 12,
        }));
        list.Add(Tf32x3GemmCase("gemm.v21.unaligned_rows",
            new GemmShape { Batch = 2, M = 17, N = 19, K = 23, StrideA = 17 * 23, StrideB = 23 * 19, StrideC = 17 * 19, Alpha = 1 }, ownKernel: false));

        // Conv v6 and v7: all three passes at conv v1-v5's shapes (3x3 stride 1 and 2, 1x1), past one 64 x 64 tile, and the
        // weight gradient with k split in 3 slices (K = 2*9*10 = 180 is not a multiple of them).
        foreach (var version in new[] { ConvVersion.V6Tf32, ConvVersion.V7HoistedTf32 })
        {
            string tag = $"conv2d.v{(int)version}";
            foreach (var (r, stride, h, w) in new[] { (3, 1, 5, 6), (3, 2, 7, 6), (3, 2, 11, 13), (1, 1, 4, 3) })
                list.Add(Tf32ConvCase($"{tag}.all_passes", ConvGeometry.Create(2, 3, h, w, 4, r, stride, r / 2), 1, version));
            list.Add(Tf32ConvCase($"{tag}.multi_tile", ConvGeometry.Create(2, 5, 9, 10, 70, 3, 1, 1), 1, version));
            list.Add(Tf32ConvCase($"{tag}.weight_grad_split_k", ConvGeometry.Create(2, 5, 9, 10, 7, 3, 1, 1), 3, version));
        }
        // v7 carries its row digits: a 1x1 kernel (radix 1, several carries per step) past one tile, stride 2 with
        // an output plane narrower than the carry of 2 (Wo = 1).
        list.Add(Tf32ConvCase("conv2d.v7.carries", ConvGeometry.Create(3, 7, 2, 1, 66, 3, 2, 1), 2, ConvVersion.V7HoistedTf32));
        list.Add(Tf32ConvCase("conv2d.v7.one_by_one", ConvGeometry.Create(2, 70, 5, 7, 9, 1, 1, 0), 1, ConvVersion.V7HoistedTf32));
        // The convolutions built on GEMMs, with GEMM v16: the tf32 convolutions KD_KERNELS=gemm=v16 gives. Conv v17 (1x1,
        // all three passes by GEMM) multiplies the operands themselves, so its reference is float64 on them rounded to
        // tf32. Winograd (v12: F(2x2, 3x3); v13: F(4x4, 3x3)) multiplies transformed operands, rounded after the
        // transform, and its output transform sums products with weights up to 1 (v12) or 8 (v13) in size: its error
        // against the fp32 operands is tf32's unit roundoff (2^-11, 4.9e-4) grown by the transforms. Measured on the CPU
        // emulation: v12 5.2e-4 in every pass, v13 2.8e-3 to 3.5e-3 (about bf16's precision).
        list.Add(Tf32GemmConvCase("conv2d.v17.gemm_v16", ConvGeometry.Create(3, 70, 5, 7, 9, 1, 1, 0), ConvVersion.V17Gemm1x1Weights, Fwd, true));
        list.Add(Tf32GemmConvCase("conv2d.v12.gemm_v16", ConvGeometry.Create(2, 5, 9, 10, 9, 3, 1, 1), ConvVersion.V12Winograd, Winograd2Tf32, false));
        list.Add(Tf32GemmConvCase("conv2d.v13.gemm_v16", ConvGeometry.Create(2, 5, 9, 10, 9, 3, 1, 1), ConvVersion.V13Winograd4, Winograd4Tf32, false));
    }

    /// <summary>Tolerances of conv v12's and v13's passes on tf32 GEMMs against the fp32 operands (see AddTensorCore): about
    /// 2 and 20 times tf32's unit roundoff, as their transforms' weights reach 1 (v12) and 8 (v13). The measured errors
    /// sit at half and a third of them.</summary>
    const double Winograd2Tf32 = 1e-3, Winograd4Tf32 = 1e-2;

    /// <summary>Forward (with bias), input gradient and weight gradient of a conv version whose GEMMs run on GEMM v16,
    /// against float64 on the operands (<paramref name="rounded"/>: rounded to tf32 first); the error is the largest of
    /// the three.</summary>
    static Case Tf32GemmConvCase(string kernel, ConvGeometry g, ConvVersion version, double tolerance, bool rounded) => new(kernel,
        $"x[{g.N},{g.Cin},{g.H},{g.W}] w[{g.Cout},{g.Cin},{g.R},{g.R}] s{g.S}, GEMMs on v16",
        (d, r) =>
        {
            int xn = g.N * g.Cin * g.H * g.W, wn = g.Cout * g.Cin * g.R * g.R, yn = g.N * g.Cout * g.Ho * g.Wo;
            var (x, w, b, dy) = (Randn(r, xn), Randn(r, wn), Randn(r, g.Cout), Randn(r, yn));
            float[] got = OnTensorCoreTiles(d, Gemm.Threads(GemmVersion.V16PipelinedTf32),
                acc => ConvPasses(acc, g, version, 1, x, w, b, dy, Gemm.At(acc, GemmVersion.V16PipelinedTf32)), out string where);
            var (tx, tw, tdy) = rounded ? (Tf32(x), Tf32(w), Tf32(dy)) : (x, w, dy);
            var (rdx, rdw) = Conv2d.Reference.Backward(tx, tw, tdy, g);
            double ey = RelError(got[..yn], Conv2d.Reference.Forward(tx, tw, b, g)), edx = RelError(got[yn..(yn + xn)], rdx);
            double edw = RelError(got[(yn + xn)..], rdw);
            return (Math.Max(ey, Math.Max(edx, edw)), tolerance,
                $"max over y ({ey:E1}), dx ({edx:E1}), dw ({edw:E1}) against {(rounded ? "tf32-rounded" : "the fp32")} operands{where}");
        });

    /// <summary>Forward (with bias), input gradient and weight gradient (in <paramref name="slices"/> slices of k) of
    /// a tf32 conv version against float64 on tf32-rounded operands; the error is the largest of the three.</summary>
    static Case Tf32ConvCase(string kernel, ConvGeometry g, int slices, ConvVersion version) => new(kernel,
        $"x[{g.N},{g.Cin},{g.H},{g.W}] w[{g.Cout},{g.Cin},{g.R},{g.R}] s{g.S}{(slices > 1 ? $", {slices} slices" : "")}",
        (d, r) =>
        {
            int xn = g.N * g.Cin * g.H * g.W, wn = g.Cout * g.Cin * g.R * g.R, yn = g.N * g.Cout * g.Ho * g.Wo;
            var (x, w, b, dy) = (Randn(r, xn), Randn(r, wn), Randn(r, g.Cout), Randn(r, yn));
            float[] got = OnTensorCoreTiles(d, TensorCore.Threads, acc => ConvPasses(acc, g, version, slices, x, w, b, dy), out string where);
            var (tx, tw, tdy) = (Tf32(x), Tf32(w), Tf32(dy));
            var (rdx, rdw) = Conv2d.Reference.Backward(tx, tw, tdy, g);
            double err = Math.Max(RelError(got[..yn], Conv2d.Reference.Forward(tx, tw, b, g)),
                Math.Max(RelError(got[yn..(yn + xn)], rdx), RelError(got[(yn + xn)..], rdw)));
            return (err, Fwd, $"max over y, dx, dw against tf32-rounded operands{where}");
        });

    static double[] Tf32(double[] x) => x.Select(v => (double)TensorCore.RoundTf32((float)v)).ToArray();
    static double[] TruncatedTf32(double[] x) => x.Select(v => (double)TensorCore.TruncateTf32((float)v)).ToArray();

    /// <summary>A tf32 GEMM case against float64 on the rounded (or truncated) operands. <paramref name="ownCopies"/>
    /// (GEMM v19, v20): the case fails unless their 16-byte copies run, not v17's.</summary>
    static Case Tf32GemmCase(string kernel, GemmVersion version, GemmShape s, bool ownCopies = false) => new(kernel, GemmShapeText(s),
        (d, r) =>
        {
            var (a, b, c, got, ran, where) = RunTensorCoreGemm(d, r, version, s,
                ran => ownCopies && !Gemm.IsVector(ran) ? $"v{(int)version}'s operands are not 16-byte aligned here: v17 would run, not its copies" : null);
            // v17-v20 give the tensor cores their operands unrounded: they read them truncated to tf32.
            bool truncated = Gemm.TruncatesTf32(version);
            Func<double[], double[]> tf32 = truncated ? TruncatedTf32 : Tf32;
            double err = RelError(got, Gemm.Reference.Run(tf32(a), tf32(b), c, s));
            double raw = RelError(got, Gemm.Reference.Run(a, b, c, s));
            string path = ran != version ? $"; as v{(int)ran}" : Gemm.IsBulk(ran) ? "; bulk copies where a tile lies inside"
                : ran == GemmVersion.V23PlainCopyTf32 ? "; copies without zero-fill where a tile lies inside"
                : ran == GemmVersion.V20LdmatrixTf32 ? "; 16-byte copies, ldmatrix"
                : ran == GemmVersion.V19VectorTf32 ? "; 16-byte copies" : "";
            return (err, Fwd, $"against tf32-{(truncated ? "truncated" : "rounded")} inputs; {raw:E1} against the fp32 inputs{path}{where}");
        });

    /// <summary>A GEMM v21 case: against float64 on the fp32 operands at the fp32 tolerance, as the fp32 versions are
    /// checked (a tf32 product's error, about 1e-4 relative, fails it: so does dropping either small-part product). The
    /// note gives the error of tf32 on the same operands beside it, and the kernel that ran: v21's own where every
    /// operand row is 16-byte aligned, else the fp32 default; the case fails if that is not the one
    /// <paramref name="ownKernel"/> expects.</summary>
    static Case Tf32x3GemmCase(string kernel, GemmShape s, bool ownKernel = true) => new(kernel, GemmShapeText(s),
        (d, r) =>
        {
            const GemmVersion v21 = GemmVersion.V21Tf32x3;
            var (a, b, c, got, ran, where) = RunTensorCoreGemm(d, r, v21, s,
                ran => (ran == v21) != ownKernel ? $"v{(int)ran} ran where the case expects {(ownKernel ? "v21's own kernel" : "the fp32 default")}" : null);
            var want = Gemm.Reference.Run(a, b, c, s);
            double tf32 = RelError(Gemm.Reference.Run(Tf32(a), Tf32(b), c, s).Select(v => (float)v).ToArray(), want);
            return (RelError(got, want), Fwd, $"against the fp32 inputs (tf32 alone: {tf32:E1}){(ran != v21 ? $"; as v{(int)ran}" : "")}{where}");
        });

    static string GemmShapeText(GemmShape s)
        => $"[{s.Batch},{s.M},{s.K}]x[{(s.StrideB == 0 ? 1 : s.Batch)},{s.K},{s.N}]{(s.TransA == 1 ? " A^T" : "")}{(s.TransB == 1 ? " B^T" : "")}{(s.Split > 0 ? $" {s.Batch / s.Split}x{s.Split} batches" : "")}";

    /// <summary>A tensor-core GEMM version on random A, B and C (C poisoned where beta = 0 must not read it), on a device
    /// of 32-lane warps: the operands, the result, the kernel Gemm.Run launched for the version there (Gemm.Effective)
    /// and where it ran. <paramref name="unexpected"/> names what is wrong with that kernel for the case, or null; the
    /// case then fails before running.</summary>
    static (double[] A, double[] B, double[] C, float[] Got, GemmVersion Ran, string Where) RunTensorCoreGemm(ComputeDevice d, Random r,
        GemmVersion version, GemmShape s, Func<GemmVersion, string?> unexpected)
    {
        // Operands as long as their last matrix reaches (two-level batches leave gaps).
        var a = Randn(r, Enumerable.Range(0, s.Batch).Max(i => s.Base(i, s.StrideA, s.OuterA)) + s.M * s.K);
        var b = Randn(r, Enumerable.Range(0, s.Batch).Max(i => s.Base(i, s.StrideB, s.OuterB)) + s.K * s.N);
        var c = Randn(r, s.Batch * s.M * s.N);
        var ran = version;
        float[] got = OnTensorCoreTiles(d, Gemm.Threads(version), acc =>
        {
            using var da = acc.Allocate1D(a.Select(v => (float)v).ToArray());
            using var db = acc.Allocate1D(b.Select(v => (float)v).ToArray());
            using var dc = acc.Allocate1D(c.Select(v => s.Beta == 0 ? float.NaN : (float)v).ToArray());
            ran = Gemm.Effective(acc, version, da.View, db.View, s);
            if (unexpected(ran) is { } why) throw new InvalidOperationException(why);
            Gemm.Run(acc, da.View, db.View, dc.View, s, version);
            return dc.GetAsArray1D();
        }, out string where);
        return (a, b, c, got, ran, where);
    }

    /// <summary>Runs f on the device's accelerator when it can run groups of <paramref name="threads"/> threads in 32-lane
    /// warps, else on a CPU accelerator made so (created for the call: kd's own CPU device keeps 2-thread groups for speed).</summary>
    static float[] OnTensorCoreTiles(ComputeDevice d, int threads, Func<Accelerator, float[]> f, out string where)
        => On32LaneGroups(d, threads, "emulated through shared memory ", f, out where);

    /// <summary>Runs f on the device's accelerator when it has groups of <paramref name="threads"/> threads in 32-lane
    /// warps (Launch.Has32LaneGroups), else on a CPU accelerator made so, saying so (after <paramref name="how"/>).</summary>
    static float[] On32LaneGroups(ComputeDevice d, int threads, string how, Func<Accelerator, float[]> f, out string where)
        => OnShapedDevice(d, Launch.Has32LaneGroups(d.Accelerator, threads), 32, threads / 32, Elsewhere32(d, how), f, out where);

    /// <summary>The note of a check run off the device on a CPU device of 32-lane warps.</summary>
    static string Elsewhere32(ComputeDevice d, string how = "")
        => $"; {how}on a CPU device of 32-lane warps ({d.Info.Id} has {d.Info.WarpSize}-lane warps)";
}
