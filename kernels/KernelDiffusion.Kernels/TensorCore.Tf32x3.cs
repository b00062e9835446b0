using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Util;

namespace KernelDiffusion.Kernels;

/// <summary>fp32 products on tf32 tensor cores by three mma (GEMM v21), the split CUTLASS calls "3xTF32" and PyTorch's
/// fp32 memory-efficient attention runs on sm_80 and newer (its DefaultGemmType for float: OpMultiplyAddFastF32). Each
/// operand x becomes big = x rounded to tf32 (to nearest, ties away: (bits + 0x1000) &amp; 0xFFFFE000, two integer
/// instructions, as <see cref="TensorCore.RoundTf32"/>) and small = x - big (exact in fp32; the tensor cores read it
/// truncated to tf32). Then a b = a_small b_big + a_big b_small + a_big b_big, dropping a_small b_small: each product
/// keeps about 21 bits where tf32 keeps 11 (relative error about 2^-21 against tf32's 2^-11), the three mma summed
/// into the same fp32 accumulators.
/// <para>On CUDA a step of 8 values of k is five inline-PTX blocks: one splits B's 8 fragment values of the warp's four
/// 8-column tiles into the kernel-wide registers kbh0..7 and kbl0..7 (<see cref="DeclareTf32x3"/>), from ldmatrix (B
/// row-major) or from values read by LDS (B k-major); then one block per 16-row A tile loads its four values (ldmatrix
/// where A is row-major, LDS where k-major), splits them in block registers and issues its 12 mma. No value leaves
/// PTX registers, and no block has more than 8 operands. Elsewhere each mma is emulated with the same split
/// (TensorCore.Emulate3: the three products in one pass).</para>
/// <para>Inf in an operand gives NaN (small = Inf - Inf), as does a value within about 2^-11 of float's largest (its big
/// part rounds to Inf), where an fp32 GEMM gives Inf or a finite value; the training loop's finiteness check catches
/// either.</para></summary>
public partial struct WarpTile64
{
    /// <summary>Declares B's split registers for <see cref="Stage16Tf32x3"/> (after <see cref="Declare"/>, once).</summary>
    public static void DeclareTf32x3()
    {
        if (CudaAsm.IsSupported) CudaAsm.Emit(".reg .b32 kbh<8>, kbl<8>;");
    }

    /// <summary>GEMM v21: a stage of 16 values of k (two steps of 8) as v20's (<see cref="Stage16Ldsm"/>) or, where A is
    /// k-major (<paramref name="aRows"/> 0), v19's (<see cref="Stage16Vector"/>), each product taken as three tf32 mma.
    /// <paramref name="a"/> and <paramref name="b"/> start at this lane's first fragment value of a k-major operand;
    /// <paramref name="aRow"/> and <paramref name="bRow"/> are this lane's ldmatrix rows of a row-major one (float indices
    /// into <paramref name="sh"/>, the dynamic shared memory). aRows and bRows are constants in each kernel.</summary>
    public static WarpTile64 Stage16Tf32x3(WarpTile64 w, ArrayView<float> sh, int aRow, ArrayView<float> a, int aRows, int bRow,
        ArrayView<float> b, int bRows, int pitch, ArrayView<float> scratch)
    {
        w = StepTf32x3(w, sh, aRow, a, aRows, bRow, b, bRows, 0, pitch, scratch);
        return StepTf32x3(w, sh, aRow + 8, a, aRows, bRow + 8, b, bRows, 8, pitch, scratch);
    }

    static WarpTile64 StepTf32x3(WarpTile64 w, ArrayView<float> sh, int aRow, ArrayView<float> a, int aRows, int bRow,
        ArrayView<float> b, int bRows, int k, int pitch, ArrayView<float> scratch)
    {
        if (CudaAsm.IsSupported)
        {
            if (bRows != 0) CudaAsm.Emit(LdsmSplitB, 4 * bRow);
            else
            {
                FragB b0 = FragB.LoadAt(b, k * pitch, pitch), b1 = FragB.LoadAt(b, 8 + k * pitch, pitch);
                FragB b2 = FragB.LoadAt(b, 16 + k * pitch, pitch), b3 = FragB.LoadAt(b, 24 + k * pitch, pitch);
                CudaAsm.Emit(SplitBValues, b0.B0, b0.B1, b1.B0, b1.B1, b2.B0, b2.B1, b3.B0, b3.B1);
            }
            if (aRows != 0)
            {
                CudaAsm.Emit(LdsmTile0, 4 * aRow);
                CudaAsm.Emit(LdsmTile1, 4 * aRow);
                CudaAsm.Emit(LdsmTile2, 4 * aRow);
                CudaAsm.Emit(LdsmTile3, 4 * aRow);
            }
            else
            {
                var a0 = FragA.LoadKMajor(a, k * pitch, pitch);
                CudaAsm.Emit(ValuesTile0, a0.A0, a0.A1, a0.A2, a0.A3);
                var a1 = FragA.LoadKMajor(a, 16 + k * pitch, pitch);
                CudaAsm.Emit(ValuesTile1, a1.A0, a1.A1, a1.A2, a1.A3);
                var a2 = FragA.LoadKMajor(a, 32 + k * pitch, pitch);
                CudaAsm.Emit(ValuesTile2, a2.A0, a2.A1, a2.A2, a2.A3);
                var a3 = FragA.LoadKMajor(a, 48 + k * pitch, pitch);
                CudaAsm.Emit(ValuesTile3, a3.A0, a3.A1, a3.A2, a3.A3);
            }
            return w;
        }
        FragB e0, e1, e2, e3;
        if (bRows != 0) (e0, e1, e2, e3) = LdsmEmulatedB(sh, bRow, scratch);
        else (e0, e1, e2, e3) = (FragB.LoadAt(b, k * pitch, pitch), FragB.LoadAt(b, 8 + k * pitch, pitch), FragB.LoadAt(b, 16 + k * pitch, pitch), FragB.LoadAt(b, 24 + k * pitch, pitch));
        FragA f0, f1, f2, f3;
        if (aRows != 0)
            (f0, f1, f2, f3) = (FragA.Of(TensorCore.LdsmEmulated(sh, aRow, scratch)), FragA.Of(TensorCore.LdsmEmulated(sh, aRow + RowTile, scratch)),
                FragA.Of(TensorCore.LdsmEmulated(sh, aRow + 2 * RowTile, scratch)), FragA.Of(TensorCore.LdsmEmulated(sh, aRow + 3 * RowTile, scratch)));
        else
            (f0, f1, f2, f3) = (FragA.LoadKMajor(a, k * pitch, pitch), FragA.LoadKMajor(a, 16 + k * pitch, pitch),
                FragA.LoadKMajor(a, 32 + k * pitch, pitch), FragA.LoadKMajor(a, 48 + k * pitch, pitch));
        w.top = WarpTile.Emulated3(w.top, f0, f1, e0, e1, e2, e3, scratch);
        w.bottom = WarpTile.Emulated3(w.bottom, f2, f3, e0, e1, e2, e3, scratch);
        return w;
    }

    // Attention v13's and v14's kernels (Attention.Tf32x3.cs) keep a warp's 16 rows (queries, or keys in the key side) of
    // scores for 32 columns in mma row tile 0 (kdw0..15: 4 tiles of 8), v14's key side its dP^T in row tile 3 (kdw48..63),
    // and the 16 rows' output for 64 channels in row tiles 1 and 2 (kdw16..47: channels 0-31, 32-63).

    /// <summary>Row tile <paramref name="tile"/> (0 or 3, a constant: scores) set to zero.</summary>
    public static WarpTile64 ZeroScores(WarpTile64 w, int tile = 0)
    {
        if (CudaAsm.IsSupported)
        {
            if (tile == 0) CudaAsm.Emit(ZeroScoresPtx);
            else CudaAsm.Emit(ZeroTile3Ptx);
            return w;
        }
        if (tile == 0) w.top = WarpTile.ZeroRowTile(w.top, 0);
        else w.bottom = WarpTile.ZeroRowTile(w.bottom, 1);
        return w;
    }

    /// <summary>Scores += A B over a stage of 16 values of k into row tile <paramref name="tile"/> (0 or 3, a constant)
    /// only: A's 16 rows and B's 32 columns row-major (rows of FragA.RowsPitch floats, B's 8-column tiles 16 rows apart in
    /// pairs, as Stage16Tf32x3 with both operands row-major); <paramref name="aRow"/> and <paramref name="bRow"/> as there,
    /// <paramref name="aRow"/> the tile's own rows.</summary>
    public static WarpTile64 ScoresTf32x3(WarpTile64 w, ArrayView<float> sh, int aRow, int bRow, ArrayView<float> scratch, int tile = 0)
    {
        w = ScoreStep(w, sh, aRow, bRow, scratch, tile);
        return ScoreStep(w, sh, aRow + 8, bRow + 8, scratch, tile);
    }

    static WarpTile64 ScoreStep(WarpTile64 w, ArrayView<float> sh, int aRow, int bRow, ArrayView<float> scratch, int tile)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(LdsmSplitB, 4 * bRow);
            if (tile == 0) CudaAsm.Emit(LdsmTile0, 4 * aRow);
            else CudaAsm.Emit(LdsmTile3Here, 4 * aRow);
            return w;
        }
        var (e0, e1, e2, e3) = LdsmEmulatedB(sh, bRow, scratch);
        var f = FragA.Of(TensorCore.LdsmEmulated(sh, aRow, scratch));
        if (tile == 0) w.top = WarpTile.Emulated3Row(w.top, 0, f, e0, e1, e2, e3, scratch);
        else w.bottom = WarpTile.Emulated3Row(w.bottom, 1, f, e0, e1, e2, e3, scratch);
        return w;
    }

    /// <summary>Row tile <paramref name="tile"/> (0 or 3) += A B over one step of 8 values of k: A's 16 rows by ldmatrix
    /// at <paramref name="aRow"/> (as ScoreStep), B's four 8-column tiles' fragments given (attention v15 reads them from
    /// channel-row tiles).</summary>
    public static WarpTile64 ScoreStepValues(WarpTile64 w, ArrayView<float> sh, int aRow, FragB b0, FragB b1, FragB b2, FragB b3, ArrayView<float> scratch,
        int tile = 0)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(SplitBValues, b0.B0, b0.B1, b1.B0, b1.B1, b2.B0, b2.B1, b3.B0, b3.B1);
            if (tile == 0) CudaAsm.Emit(LdsmTile0, 4 * aRow);
            else CudaAsm.Emit(LdsmTile3Here, 4 * aRow);
            return w;
        }
        var f = FragA.Of(TensorCore.LdsmEmulated(sh, aRow, scratch));
        if (tile == 0) w.top = WarpTile.Emulated3Row(w.top, 0, f, b0, b1, b2, b3, scratch);
        else w.bottom = WarpTile.Emulated3Row(w.bottom, 1, f, b0, b1, b2, b3, scratch);
        return w;
    }

    /// <summary>Output += P V for one step of 8 keys, into row tile 1 (<paramref name="half"/> 0: channels 0-31) or 2
    /// (half 1: channels 32-63): <paramref name="p"/> this lane's A fragment of P, <paramref name="v0"/>..v3 its B
    /// fragments of the half's four 8-channel tiles.</summary>
    public static WarpTile64 OutputTf32x3(WarpTile64 w, FragA p, FragB v0, FragB v1, FragB v2, FragB v3, int half, ArrayView<float> scratch)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(SplitBValues, v0.B0, v0.B1, v1.B0, v1.B1, v2.B0, v2.B1, v3.B0, v3.B1);
            if (half == 0) CudaAsm.Emit(ValuesTile1, p.A0, p.A1, p.A2, p.A3);
            else CudaAsm.Emit(ValuesTile2, p.A0, p.A1, p.A2, p.A3);
            return w;
        }
        if (half == 0) w.top = WarpTile.Emulated3Row(w.top, 1, p, v0, v1, v2, v3, scratch);
        else w.bottom = WarpTile.Emulated3Row(w.bottom, 0, p, v0, v1, v2, v3, scratch);
        return w;
    }

    /// <summary>The output (row tiles 1 and 2) scaled: each lane's row g by <paramref name="top"/>, row g + 8 by
    /// <paramref name="bottom"/>.</summary>
    public static WarpTile64 ScaleOutput(WarpTile64 w, float top, float bottom)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(ScaleOutputPtx, top, bottom);
            return w;
        }
        w.top = WarpTile.ScaleRowTile(w.top, 1, top, bottom);
        w.bottom = WarpTile.ScaleRowTile(w.bottom, 0, top, bottom);
        return w;
    }

    const string ZeroScoresPtx = "mov.f32 kdw0, 0f00000000; mov.f32 kdw1, 0f00000000; mov.f32 kdw2, 0f00000000; mov.f32 kdw3, 0f00000000; " +
        "mov.f32 kdw4, 0f00000000; mov.f32 kdw5, 0f00000000; mov.f32 kdw6, 0f00000000; mov.f32 kdw7, 0f00000000; " +
        "mov.f32 kdw8, 0f00000000; mov.f32 kdw9, 0f00000000; mov.f32 kdw10, 0f00000000; mov.f32 kdw11, 0f00000000; " +
        "mov.f32 kdw12, 0f00000000; mov.f32 kdw13, 0f00000000; mov.f32 kdw14, 0f00000000; mov.f32 kdw15, 0f00000000;";
    const string ZeroTile3Ptx = "mov.f32 kdw48, 0f00000000; mov.f32 kdw49, 0f00000000; mov.f32 kdw50, 0f00000000; mov.f32 kdw51, 0f00000000; " +
        "mov.f32 kdw52, 0f00000000; mov.f32 kdw53, 0f00000000; mov.f32 kdw54, 0f00000000; mov.f32 kdw55, 0f00000000; " +
        "mov.f32 kdw56, 0f00000000; mov.f32 kdw57, 0f00000000; mov.f32 kdw58, 0f00000000; mov.f32 kdw59, 0f00000000; " +
        "mov.f32 kdw60, 0f00000000; mov.f32 kdw61, 0f00000000; mov.f32 kdw62, 0f00000000; mov.f32 kdw63, 0f00000000;";
    // Row tile 3's mma from A rows at %0 itself (LdsmTile3 reads them 48 rows on, as GEMM v21's fourth tile).
    const string LdsmTile3Here = LdsmA + "[kda]; " + SplitA + Mma3Tile3 + "}";
    // Row g of each lane's output is c0, c1 of each tile (kdw 4n, 4n + 1), row g + 8 c2, c3.
    const string ScaleOutputPtx =
        "mul.f32 kdw16, kdw16, %0; mul.f32 kdw17, kdw17, %0; mul.f32 kdw18, kdw18, %1; mul.f32 kdw19, kdw19, %1; mul.f32 kdw20, kdw20, %0; mul.f32 kdw21, kdw21, %0; mul.f32 kdw22, kdw22, %1; mul.f32 kdw23, kdw23, %1; " +
        "mul.f32 kdw24, kdw24, %0; mul.f32 kdw25, kdw25, %0; mul.f32 kdw26, kdw26, %1; mul.f32 kdw27, kdw27, %1; mul.f32 kdw28, kdw28, %0; mul.f32 kdw29, kdw29, %0; mul.f32 kdw30, kdw30, %1; mul.f32 kdw31, kdw31, %1; " +
        "mul.f32 kdw32, kdw32, %0; mul.f32 kdw33, kdw33, %0; mul.f32 kdw34, kdw34, %1; mul.f32 kdw35, kdw35, %1; mul.f32 kdw36, kdw36, %0; mul.f32 kdw37, kdw37, %0; mul.f32 kdw38, kdw38, %1; mul.f32 kdw39, kdw39, %1; " +
        "mul.f32 kdw40, kdw40, %0; mul.f32 kdw41, kdw41, %0; mul.f32 kdw42, kdw42, %1; mul.f32 kdw43, kdw43, %1; mul.f32 kdw44, kdw44, %0; mul.f32 kdw45, kdw45, %0; mul.f32 kdw46, kdw46, %1; mul.f32 kdw47, kdw47, %1; ";

    // B: kbl0..7 hold b0, b1 of the warp's four 8-column tiles in turn (as klb in LdsmStepA/AB); each splits into kbh (big)
    // and kbl (small). From row-major B (%0: this lane's ldmatrix row, byte offset; two tiles per ldmatrix, the pairs 16
    // rows apart) or from k-major values (%0-%7).
    const string SplitB =
        "add.u32 kbh0, kbl0, 4096; and.b32 kbh0, kbh0, 0xFFFFE000; sub.f32 kbl0, kbl0, kbh0; " +
        "add.u32 kbh1, kbl1, 4096; and.b32 kbh1, kbh1, 0xFFFFE000; sub.f32 kbl1, kbl1, kbh1; " +
        "add.u32 kbh2, kbl2, 4096; and.b32 kbh2, kbh2, 0xFFFFE000; sub.f32 kbl2, kbl2, kbh2; " +
        "add.u32 kbh3, kbl3, 4096; and.b32 kbh3, kbh3, 0xFFFFE000; sub.f32 kbl3, kbl3, kbh3; " +
        "add.u32 kbh4, kbl4, 4096; and.b32 kbh4, kbh4, 0xFFFFE000; sub.f32 kbl4, kbl4, kbh4; " +
        "add.u32 kbh5, kbl5, 4096; and.b32 kbh5, kbh5, 0xFFFFE000; sub.f32 kbl5, kbl5, kbh5; " +
        "add.u32 kbh6, kbl6, 4096; and.b32 kbh6, kbh6, 0xFFFFE000; sub.f32 kbl6, kbl6, kbh6; " +
        "add.u32 kbh7, kbl7, 4096; and.b32 kbh7, kbh7, 0xFFFFE000; sub.f32 kbl7, kbl7, kbh7; ";
    const string LdsmSplitB = "{ .reg .u32 kdb; mov.u32 kdb, __dyn_shared_alloca; add.u32 kdb, kdb, %0; " +
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {kbl0, kbl1, kbl2, kbl3}, [kdb]; ldmatrix.sync.aligned.m8n8.x4.shared.b16 {kbl4, kbl5, kbl6, kbl7}, [kdb+1280]; " +
        SplitB + "}";
    const string SplitBValues = "mov.b32 kbl0, %0; mov.b32 kbl1, %1; mov.b32 kbl2, %2; mov.b32 kbl3, %3; mov.b32 kbl4, %4; mov.b32 kbl5, %5; mov.b32 kbl6, %6; mov.b32 kbl7, %7; " +
        SplitB;

    // A tile i (16 rows): its four values in ksl0..3, split into ksh (big) and ksl (small), then its 12 mma (Mma3Tile{i}).
    // From row-major A by ldmatrix (%0: this lane's row of tile 0 as a byte offset; tile i 1280 bytes on, as LdsmLoadA)
    // or from k-major values (%0-%3).
    const string SplitA =
        "add.u32 ksh0, ksl0, 4096; and.b32 ksh0, ksh0, 0xFFFFE000; sub.f32 ksl0, ksl0, ksh0; " +
        "add.u32 ksh1, ksl1, 4096; and.b32 ksh1, ksh1, 0xFFFFE000; sub.f32 ksl1, ksl1, ksh1; " +
        "add.u32 ksh2, ksl2, 4096; and.b32 ksh2, ksh2, 0xFFFFE000; sub.f32 ksl2, ksl2, ksh2; " +
        "add.u32 ksh3, ksl3, 4096; and.b32 ksh3, ksh3, 0xFFFFE000; sub.f32 ksl3, ksl3, ksh3; ";
    const string LdsmA = "{ .reg .u32 kda; .reg .b32 ksh<4>, ksl<4>; mov.u32 kda, __dyn_shared_alloca; add.u32 kda, kda, %0; " +
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {ksl0, ksl1, ksl2, ksl3}, ";
    const string ValuesA = "{ .reg .b32 ksh<4>, ksl<4>; mov.b32 ksl0, %0; mov.b32 ksl1, %1; mov.b32 ksl2, %2; mov.b32 ksl3, %3; ";
    const string LdsmTile0 = LdsmA + "[kda]; " + SplitA + Mma3Tile0 + "}";
    const string LdsmTile1 = LdsmA + "[kda+1280]; " + SplitA + Mma3Tile1 + "}";
    const string LdsmTile2 = LdsmA + "[kda+2560]; " + SplitA + Mma3Tile2 + "}";
    const string LdsmTile3 = LdsmA + "[kda+3840]; " + SplitA + Mma3Tile3 + "}";
    const string ValuesTile0 = ValuesA + SplitA + Mma3Tile0 + "}";
    const string ValuesTile1 = ValuesA + SplitA + Mma3Tile1 + "}";
    const string ValuesTile2 = ValuesA + SplitA + Mma3Tile2 + "}";
    const string ValuesTile3 = ValuesA + SplitA + Mma3Tile3 + "}";

    // Mma tile (i, j): small A with big B, big A with small B, big with big, into kdw[4 (4 i + j)] .. + 3.
    const string Mma3Tile0 =
        LdsmMma + "{kdw0, kdw1, kdw2, kdw3}, {ksl0, ksl1, ksl2, ksl3}, {kbh0, kbh1}, {kdw0, kdw1, kdw2, kdw3}; " +
        LdsmMma + "{kdw0, kdw1, kdw2, kdw3}, {ksh0, ksh1, ksh2, ksh3}, {kbl0, kbl1}, {kdw0, kdw1, kdw2, kdw3}; " +
        LdsmMma + "{kdw0, kdw1, kdw2, kdw3}, {ksh0, ksh1, ksh2, ksh3}, {kbh0, kbh1}, {kdw0, kdw1, kdw2, kdw3}; " +
        LdsmMma + "{kdw4, kdw5, kdw6, kdw7}, {ksl0, ksl1, ksl2, ksl3}, {kbh2, kbh3}, {kdw4, kdw5, kdw6, kdw7}; " +
        LdsmMma + "{kdw4, kdw5, kdw6, kdw7}, {ksh0, ksh1, ksh2, ksh3}, {kbl2, kbl3}, {kdw4, kdw5, kdw6, kdw7}; " +
        LdsmMma + "{kdw4, kdw5, kdw6, kdw7}, {ksh0, ksh1, ksh2, ksh3}, {kbh2, kbh3}, {kdw4, kdw5, kdw6, kdw7}; " +
        LdsmMma + "{kdw8, kdw9, kdw10, kdw11}, {ksl0, ksl1, ksl2, ksl3}, {kbh4, kbh5}, {kdw8, kdw9, kdw10, kdw11}; " +
        LdsmMma + "{kdw8, kdw9, kdw10, kdw11}, {ksh0, ksh1, ksh2, ksh3}, {kbl4, kbl5}, {kdw8, kdw9, kdw10, kdw11}; " +
        LdsmMma + "{kdw8, kdw9, kdw10, kdw11}, {ksh0, ksh1, ksh2, ksh3}, {kbh4, kbh5}, {kdw8, kdw9, kdw10, kdw11}; " +
        LdsmMma + "{kdw12, kdw13, kdw14, kdw15}, {ksl0, ksl1, ksl2, ksl3}, {kbh6, kbh7}, {kdw12, kdw13, kdw14, kdw15}; " +
        LdsmMma + "{kdw12, kdw13, kdw14, kdw15}, {ksh0, ksh1, ksh2, ksh3}, {kbl6, kbl7}, {kdw12, kdw13, kdw14, kdw15}; " +
        LdsmMma + "{kdw12, kdw13, kdw14, kdw15}, {ksh0, ksh1, ksh2, ksh3}, {kbh6, kbh7}, {kdw12, kdw13, kdw14, kdw15}; ";
    const string Mma3Tile1 =
        LdsmMma + "{kdw16, kdw17, kdw18, kdw19}, {ksl0, ksl1, ksl2, ksl3}, {kbh0, kbh1}, {kdw16, kdw17, kdw18, kdw19}; " +
        LdsmMma + "{kdw16, kdw17, kdw18, kdw19}, {ksh0, ksh1, ksh2, ksh3}, {kbl0, kbl1}, {kdw16, kdw17, kdw18, kdw19}; " +
        LdsmMma + "{kdw16, kdw17, kdw18, kdw19}, {ksh0, ksh1, ksh2, ksh3}, {kbh0, kbh1}, {kdw16, kdw17, kdw18, kdw19}; " +
        LdsmMma + "{kdw20, kdw21, kdw22, kdw23}, {ksl0, ksl1, ksl2, ksl3}, {kbh2, kbh3}, {kdw20, kdw21, kdw22, kdw23}; " +
        LdsmMma + "{kdw20, kdw21, kdw22, kdw23}, {ksh0, ksh1, ksh2, ksh3}, {kbl2, kbl3}, {kdw20, kdw21, kdw22, kdw23}; " +
        LdsmMma + "{kdw20, kdw21, kdw22, kdw23}, {ksh0, ksh1, ksh2, ksh3}, {kbh2, kbh3}, {kdw20, kdw21, kdw22, kdw23}; " +
        LdsmMma + "{kdw24, kdw25, kdw26, kdw27}, {ksl0, ksl1, ksl2, ksl3}, {kbh4, kbh5}, {kdw24, kdw25, kdw26, kdw27}; " +
        LdsmMma + "{kdw24, kdw25, kdw26, kdw27}, {ksh0, ksh1, ksh2, ksh3}, {kbl4, kbl5}, {kdw24, kdw25, kdw26, kdw27}; " +
        LdsmMma + "{kdw24, kdw25, kdw26, kdw27}, {ksh0, ksh1, ksh2, ksh3}, {kbh4, kbh5}, {kdw24, kdw25, kdw26, kdw27}; " +
        LdsmMma + "{kdw28, kdw29, kdw30, kdw31}, {ksl0, ksl1, ksl2, ksl3}, {kbh6, kbh7}, {kdw28, kdw29, kdw30, kdw31}; " +
        LdsmMma + "{kdw28, kdw29, kdw30, kdw31}, {ksh0, ksh1, ksh2, ksh3}, {kbl6, kbl7}, {kdw28, kdw29, kdw30, kdw31}; " +
        LdsmMma + "{kdw28, kdw29, kdw30, kdw31}, {ksh0, ksh1, ksh2, ksh3}, {kbh6, kbh7}, {kdw28, kdw29, kdw30, kdw31}; ";
    const string Mma3Tile2 =
        LdsmMma + "{kdw32, kdw33, kdw34, kdw35}, {ksl0, ksl1, ksl2, ksl3}, {kbh0, kbh1}, {kdw32, kdw33, kdw34, kdw35}; " +
        LdsmMma + "{kdw32, kdw33, kdw34, kdw35}, {ksh0, ksh1, ksh2, ksh3}, {kbl0, kbl1}, {kdw32, kdw33, kdw34, kdw35}; " +
        LdsmMma + "{kdw32, kdw33, kdw34, kdw35}, {ksh0, ksh1, ksh2, ksh3}, {kbh0, kbh1}, {kdw32, kdw33, kdw34, kdw35}; " +
        LdsmMma + "{kdw36, kdw37, kdw38, kdw39}, {ksl0, ksl1, ksl2, ksl3}, {kbh2, kbh3}, {kdw36, kdw37, kdw38, kdw39}; " +
        LdsmMma + "{kdw36, kdw37, kdw38, kdw39}, {ksh0, ksh1, ksh2, ksh3}, {kbl2, kbl3}, {kdw36, kdw37, kdw38, kdw39}; " +
        LdsmMma + "{kdw36, kdw37, kdw38, kdw39}, {ksh0, ksh1, ksh2, ksh3}, {kbh2, kbh3}, {kdw36, kdw37, kdw38, kdw39}; " +
        LdsmMma + "{kdw40, kdw41, kdw42, kdw43}, {ksl0, ksl1, ksl2, ksl3}, {kbh4, kbh5}, {kdw40, kdw41, kdw42, kdw43}; " +
        LdsmMma + "{kdw40, kdw41, kdw42, kdw43}, {ksh0, ksh1, ksh2, ksh3}, {kbl4, kbl5}, {kdw40, kdw41, kdw42, kdw43}; " +
        LdsmMma + "{kdw40, kdw41, kdw42, kdw43}, {ksh0, ksh1, ksh2, ksh3}, {kbh4, kbh5}, {kdw40, kdw41, kdw42, kdw43}; " +
        LdsmMma + "{kdw44, kdw45, kdw46, kdw47}, {ksl0, ksl1, ksl2, ksl3}, {kbh6, kbh7}, {kdw44, kdw45, kdw46, kdw47}; " +
        LdsmMma + "{kdw44, kdw45, kdw46, kdw47}, {ksh0, ksh1, ksh2, ksh3}, {kbl6, kbl7}, {kdw44, kdw45, kdw46, kdw47}; " +
        LdsmMma + "{kdw44, kdw45, kdw46, kdw47}, {ksh0, ksh1, ksh2, ksh3}, {kbh6, kbh7}, {kdw44, kdw45, kdw46, kdw47}; ";
    const string Mma3Tile3 =
        LdsmMma + "{kdw48, kdw49, kdw50, kdw51}, {ksl0, ksl1, ksl2, ksl3}, {kbh0, kbh1}, {kdw48, kdw49, kdw50, kdw51}; " +
        LdsmMma + "{kdw48, kdw49, kdw50, kdw51}, {ksh0, ksh1, ksh2, ksh3}, {kbl0, kbl1}, {kdw48, kdw49, kdw50, kdw51}; " +
        LdsmMma + "{kdw48, kdw49, kdw50, kdw51}, {ksh0, ksh1, ksh2, ksh3}, {kbh0, kbh1}, {kdw48, kdw49, kdw50, kdw51}; " +
        LdsmMma + "{kdw52, kdw53, kdw54, kdw55}, {ksl0, ksl1, ksl2, ksl3}, {kbh2, kbh3}, {kdw52, kdw53, kdw54, kdw55}; " +
        LdsmMma + "{kdw52, kdw53, kdw54, kdw55}, {ksh0, ksh1, ksh2, ksh3}, {kbl2, kbl3}, {kdw52, kdw53, kdw54, kdw55}; " +
        LdsmMma + "{kdw52, kdw53, kdw54, kdw55}, {ksh0, ksh1, ksh2, ksh3}, {kbh2, kbh3}, {kdw52, kdw53, kdw54, kdw55}; " +
        LdsmMma + "{kdw56, kdw57, kdw58, kdw59}, {ksl0, ksl1, ksl2, ksl3}, {kbh4, kbh5}, {kdw56, kdw57, kdw58, kdw59}; " +
        LdsmMma + "{kdw56, kdw57, kdw58, kdw59}, {ksh0, ksh1, ksh2, ksh3}, {kbl4, kbl5}, {kdw56, kdw57, kdw58, kdw59}; " +
        LdsmMma + "{kdw56, kdw57, kdw58, kdw59}, {ksh0, ksh1, ksh2, ksh3}, {kbh4, kbh5}, {kdw56, kdw57, kdw58, kdw59}; " +
        LdsmMma + "{kdw60, kdw61, kdw62, kdw63}, {ksl0, ksl1, ksl2, ksl3}, {kbh6, kbh7}, {kdw60, kdw61, kdw62, kdw63}; " +
        LdsmMma + "{kdw60, kdw61, kdw62, kdw63}, {ksh0, ksh1, ksh2, ksh3}, {kbl6, kbl7}, {kdw60, kdw61, kdw62, kdw63}; " +
        LdsmMma + "{kdw60, kdw61, kdw62, kdw63}, {ksh0, ksh1, ksh2, ksh3}, {kbh6, kbh7}, {kdw60, kdw61, kdw62, kdw63}; ";
}
