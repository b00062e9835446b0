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
/// PTX registers, and no block has more than 8 operands. Elsewhere the same split feeds three emulated products.</para>
/// <para>Inf in an operand gives NaN (small = Inf - Inf), and values within 2^-12 of float's largest round to Inf:
/// fp32 GEMMs give Inf there. A non-finite product is caught as one either way (the training loop's finiteness
/// check).</para></summary>
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
        if (bRows != 0)
        {
            Float4 p = TensorCore.LdsmEmulated(sh, bRow, scratch), q = TensorCore.LdsmEmulated(sh, bRow + RowTile, scratch);
            (e0, e1, e2, e3) = (new FragB { B0 = p.X, B1 = p.Y }, new FragB { B0 = p.Z, B1 = p.W }, new FragB { B0 = q.X, B1 = q.Y }, new FragB { B0 = q.Z, B1 = q.W });
        }
        else (e0, e1, e2, e3) = (FragB.LoadAt(b, k * pitch, pitch), FragB.LoadAt(b, 8 + k * pitch, pitch), FragB.LoadAt(b, 16 + k * pitch, pitch), FragB.LoadAt(b, 24 + k * pitch, pitch));
        FragA f0, f1, f2, f3;
        if (aRows != 0)
            (f0, f1, f2, f3) = (FragA.Of(TensorCore.LdsmEmulated(sh, aRow, scratch)), FragA.Of(TensorCore.LdsmEmulated(sh, aRow + RowTile, scratch)),
                FragA.Of(TensorCore.LdsmEmulated(sh, aRow + 2 * RowTile, scratch)), FragA.Of(TensorCore.LdsmEmulated(sh, aRow + 3 * RowTile, scratch)));
        else
            (f0, f1, f2, f3) = (FragA.LoadKMajor(a, k * pitch, pitch), FragA.LoadKMajor(a, 16 + k * pitch, pitch),
                FragA.LoadKMajor(a, 32 + k * pitch, pitch), FragA.LoadKMajor(a, 48 + k * pitch, pitch));
        // The PTX's order within each mma tile: small A with big B, big A with small B, then the big ones.
        w = Multiply(w, Small(f0), Small(f1), Small(f2), Small(f3), Big(e0), Big(e1), Big(e2), Big(e3), scratch);
        w = Multiply(w, Big(f0), Big(f1), Big(f2), Big(f3), Small(e0), Small(e1), Small(e2), Small(e3), scratch);
        return Multiply(w, Big(f0), Big(f1), Big(f2), Big(f3), Big(e0), Big(e1), Big(e2), Big(e3), scratch);
    }

    static FragA Big(FragA f) => new() { A0 = TensorCore.RoundTf32(f.A0), A1 = TensorCore.RoundTf32(f.A1), A2 = TensorCore.RoundTf32(f.A2), A3 = TensorCore.RoundTf32(f.A3) };
    static FragA Small(FragA f) => new() { A0 = f.A0 - TensorCore.RoundTf32(f.A0), A1 = f.A1 - TensorCore.RoundTf32(f.A1), A2 = f.A2 - TensorCore.RoundTf32(f.A2), A3 = f.A3 - TensorCore.RoundTf32(f.A3) };
    static FragB Big(FragB f) => new() { B0 = TensorCore.RoundTf32(f.B0), B1 = TensorCore.RoundTf32(f.B1) };
    static FragB Small(FragB f) => new() { B0 = f.B0 - TensorCore.RoundTf32(f.B0), B1 = f.B1 - TensorCore.RoundTf32(f.B1) };

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
