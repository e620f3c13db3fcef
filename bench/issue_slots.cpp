// What an AVX-512 instruction costs next to FMAs on the core this runs on, and the ceiling
// that the streaming-softmax instruction mix sets: the arithmetic bound behind the % of peak
// that `longattn bench` reports.
//
// Each loop is a fixed sequence of instructions in inline assembly (no compiler scheduling or
// register allocation in the way): 24 FMAs on 12 independent accumulators, then the same with
// 12 instructions of one kind on registers the FMAs do not touch. The extra time, in units of
// one FMA's share of the FMA-only loop, is the instruction's cost in FMA issue slots: 0 if it
// runs beside the FMAs, 1 if it takes an FMA's place.
//
// Then attention's register blocks, instruction for instruction as the AVX-512 micro-kernels
// run them at D = 64 and 128, with every operand in L1: their time against as many FMAs
// alone is the most of the FMA peak that the kernels' instructions leave, before any cache
// miss.
//
// x86-64 with AVX-512F only; the numbers are medians of 7 rounds. The loops are never
// inlined: a call ends the compiler's use of vector registers, which the assembly overwrites.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace {

alignas(64) float g_store_area[64 * 16 * 4];

#define LA_STR(x) #x
#define LA_FMA(i) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" LA_STR(i) "\n\t"
#define LA_FMA12 LA_FMA(0) LA_FMA(1) LA_FMA(2) LA_FMA(3) LA_FMA(4) LA_FMA(5) \
                 LA_FMA(6) LA_FMA(7) LA_FMA(8) LA_FMA(9) LA_FMA(10) LA_FMA(11)
#define LA_FMA24 LA_FMA12 LA_FMA12
// Twelve instructions of one kind, each on a register of its own (zmm12..zmm23).
#define LA_X12(op) op(12) op(13) op(14) op(15) op(16) op(17) op(18) op(19) op(20) op(21) op(22) op(23)
#define LA_ADD(i) "vaddps %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) "\n\t"
#define LA_MAX(i) "vmaxps %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) "\n\t"
#define LA_REDUCE(i) "vreduceps $9, %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) "\n\t"
#define LA_SCALEF(i) "vscalefps %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) "\n\t"
#define LA_RCP14(i) "vrcp14ps %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) "\n\t"
#define LA_PERMUTE(i) "vpermps %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) "\n\t"
#define LA_PERMUTE2(i) "vpermt2ps %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) "\n\t"
#define LA_DIVIDE(i) "vdivps %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) ", %%zmm" LA_STR(i) "\n\t"
#define LA_MOVE(i) "vmovaps %%zmm24, %%zmm" LA_STR(i) "\n\t"
#define LA_BROADCAST(i) "vbroadcastss " LA_STR(i) "*4(%0), %%zmm" LA_STR(i) "\n\t"
#define LA_LOAD(i) "vmovups " LA_STR(i) "*64(%0), %%zmm" LA_STR(i) "\n\t"
#define LA_STORE(i) "vmovups %%zmm" LA_STR(i) ", " LA_STR(i) "*64(%0)\n\t"
// Attention's register blocks as the AVX-512 micro-kernels run them on a tile's 64 keys,
// operands in L1: a 6 × 4 QKᵀ block over depth D (per step 4 key loads, 6 query broadcasts,
// 24 FMAs); its 24 score vectors through exp2 (f = x - floor x, degree-5 Horner, scalef, the
// row sum) and stored; the 6 × 4 P·V blocks of those rows and keys, with their loads and
// stores of the output rows. The FMAs and what they cannot do without.
#define LA_QUERY_ROW(r, a, b, c, d)                                                            \
  "vbroadcastss 256+4*" #r "(%0), %%zmm28\n\t"                                                   \
  "vfmadd231ps %%zmm24, %%zmm28, %%zmm" #a "\n\tvfmadd231ps %%zmm25, %%zmm28, %%zmm" #b "\n\t"    \
  "vfmadd231ps %%zmm26, %%zmm28, %%zmm" #c "\n\tvfmadd231ps %%zmm27, %%zmm28, %%zmm" #d "\n\t"
#define LA_DEPTH_STEPS(n)                                                                       \
  ".rept " #n "\n\t"                                                                             \
  "vmovups 0(%0), %%zmm24\n\tvmovups 64(%0), %%zmm25\n\t"                                        \
  "vmovups 128(%0), %%zmm26\n\tvmovups 192(%0), %%zmm27\n\t"                                     \
  LA_QUERY_ROW(0, 0, 1, 2, 3) LA_QUERY_ROW(1, 4, 5, 6, 7) LA_QUERY_ROW(2, 8, 9, 10, 11)           \
  LA_QUERY_ROW(3, 12, 13, 14, 15) LA_QUERY_ROW(4, 16, 17, 18, 19) LA_QUERY_ROW(5, 20, 21, 22, 23) \
  ".endr\n\t"
// 2^x in place (x in zmm<v>, coefficients in zmm31 and zmm28..24), stored as P.
#define LA_EXP2(v)                                                                              \
  "vreduceps $9, %%zmm" #v ", %%zmm29\n\tvmovaps %%zmm31, %%zmm30\n\t"                          \
  ".irp c, 28, 27, 26, 25, 24\n\tvfmadd132ps %%zmm29, %%zmm\\c, %%zmm30\n\t.endr\n\t"           \
  "vscalefps %%zmm" #v ", %%zmm30, %%zmm" #v "\n\tvmovups %%zmm" #v ", 1024+64*" #v "(%0)\n\t"
// A row's four vectors, exponentiated, added to its sum vector (kept in memory).
#define LA_EXP2_ROW(r, a, b, c, d)                                                              \
  LA_EXP2(a) LA_EXP2(b) LA_EXP2(c) LA_EXP2(d)                                                    \
  "vaddps 2560+64*" #r "(%0), %%zmm" #a ", %%zmm30\n\tvaddps %%zmm" #b ", %%zmm30, %%zmm30\n\t"   \
  "vaddps %%zmm" #c ", %%zmm30, %%zmm30\n\tvaddps %%zmm" #d ", %%zmm30, %%zmm30\n\t"              \
  "vmovups %%zmm30, 2560+64*" #r "(%0)\n\t"
#define LA_EXP2_BLOCK                                                                           \
  ".irp c, 24, 25, 26, 27, 28, 31\n\tvbroadcastss 512(%0), %%zmm\\c\n\t.endr\n\t"               \
  LA_EXP2_ROW(0, 0, 1, 2, 3) LA_EXP2_ROW(1, 4, 5, 6, 7) LA_EXP2_ROW(2, 8, 9, 10, 11)              \
  LA_EXP2_ROW(3, 12, 13, 14, 15) LA_EXP2_ROW(4, 16, 17, 18, 19) LA_EXP2_ROW(5, 20, 21, 22, 23)
#define LA_EVERY_ACCUMULATOR \
  ".irp v, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23\n\t"
// D = 64: P·V's block runs 128 keys between loading and storing its output rows, so a block
// over 64 keys has half of each.
#define LA_HALF_THE_ACCUMULATORS ".irp v, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22\n\t"
#define LA_ATTENTION_BLOCKS_64                                                                  \
  LA_DEPTH_STEPS(64) LA_EXP2_BLOCK                                                               \
  LA_HALF_THE_ACCUMULATORS "vmovups 3072+64*\\v(%0), %%zmm\\v\n\t.endr\n\t" LA_DEPTH_STEPS(64)    \
  LA_HALF_THE_ACCUMULATORS "vmovups %%zmm\\v, 3072+64*\\v(%0)\n\t.endr\n\t"
// D = 128: QKᵀ over depth 128; P·V's two column blocks each over the 64 keys of a 32 KiB
// chunk of value rows, loading and storing their output rows.
#define LA_PV_BLOCK_128                                                                         \
  LA_EVERY_ACCUMULATOR "vmovups 3072+64*\\v(%0), %%zmm\\v\n\t.endr\n\t" LA_DEPTH_STEPS(64)        \
  LA_EVERY_ACCUMULATOR "vmovups %%zmm\\v, 3072+64*\\v(%0)\n\t.endr\n\t"
#define LA_ATTENTION_BLOCKS_128 LA_DEPTH_STEPS(128) LA_EXP2_BLOCK LA_PV_BLOCK_128 LA_PV_BLOCK_128

#define LA_LOOP(name, body)                                                                   \
  [[gnu::noinline]] void name(long iterations) {                                              \
    for (long i = 0; i < iterations; ++i) asm volatile(body ::"r"(g_store_area) : "memory");  \
  }

LA_LOOP(fma24, LA_FMA24)
LA_LOOP(fma24_add, LA_FMA24 LA_X12(LA_ADD))
LA_LOOP(fma24_max, LA_FMA24 LA_X12(LA_MAX))
LA_LOOP(fma24_reduce, LA_FMA24 LA_X12(LA_REDUCE))
LA_LOOP(fma24_scalef, LA_FMA24 LA_X12(LA_SCALEF))
LA_LOOP(fma24_rcp14, LA_FMA24 LA_X12(LA_RCP14))
LA_LOOP(fma24_permute, LA_FMA24 LA_X12(LA_PERMUTE))
LA_LOOP(fma24_permute2, LA_FMA24 LA_X12(LA_PERMUTE2))
LA_LOOP(fma24_divide, LA_FMA24 LA_X12(LA_DIVIDE))
LA_LOOP(fma24_move, LA_FMA24 LA_X12(LA_MOVE))
LA_LOOP(fma24_broadcast, LA_FMA24 LA_X12(LA_BROADCAST))
LA_LOOP(fma24_load, LA_FMA24 LA_X12(LA_LOAD))
LA_LOOP(fma24_store, LA_FMA24 LA_X12(LA_STORE))
LA_LOOP(attention_blocks_64, LA_ATTENTION_BLOCKS_64)
LA_LOOP(attention_blocks_128, LA_ATTENTION_BLOCKS_128)
LA_LOOP(fma_128x24, ".rept 128\n\t" LA_FMA24 ".endr\n\t")
LA_LOOP(fma_256x24, ".rept 256\n\t" LA_FMA24 ".endr\n\t")

// Zeroes the registers the loops read, so that no lane holds a NaN or a denormal.
[[gnu::noinline]] void clear_registers() {
  asm volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      ".irp r, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, "
      "24, 25, 26, 27, 28, 29, 30, 31\n\tvmovaps %%zmm0, %%zmm\\r\n\t.endr\n\t" ::: "memory");
}

// Seconds per iteration, the median of 7 rounds.
double seconds_per_iteration(void (*loop)(long), long iterations) {
  std::vector<double> rounds;
  for (int round = 0; round < 7; ++round) {
    clear_registers();
    const auto start = std::chrono::steady_clock::now();
    loop(iterations);
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    rounds.push_back(elapsed.count() / iterations);
  }
  std::nth_element(rounds.begin(), rounds.begin() + 3, rounds.end());
  return rounds[3];
}

}  // namespace

int main() {
  if (!__builtin_cpu_supports("avx512f")) {
    std::printf("this CPU has no AVX-512F: nothing to measure\n");
    return 0;
  }
  constexpr long kIterations = 20'000'000;
  const double fma_only = seconds_per_iteration(fma24, kIterations);
  const double per_fma = fma_only / 24;
  std::printf("24 FMAs: %.3f ns (%.2f GFLOP/s)\n", fma_only * 1e9, 24 * 32 / fma_only * 1e-9);
  std::printf("%-28s %s\n", "12 of these beside them", "cost in FMA issue slots each");
  const struct {
    const char* name;
    void (*loop)(long);
  } kinds[] = {{"vaddps", fma24_add},          {"vmaxps", fma24_max},
               {"vreduceps", fma24_reduce},    {"vscalefps", fma24_scalef},
               {"vrcp14ps", fma24_rcp14},      {"vpermps", fma24_permute},
               {"vpermt2ps", fma24_permute2},  {"vdivps", fma24_divide},
               {"vmovaps zmm, zmm", fma24_move}, {"vbroadcastss zmm, m32", fma24_broadcast},
               {"vmovups zmm, m512 (load)", fma24_load}, {"vmovups m512, zmm (store)", fma24_store}};
  for (const auto& kind : kinds) {
    const double t = seconds_per_iteration(kind.loop, kIterations);
    std::printf("%-28s %.2f\n", kind.name, (t - fma_only) / per_fma / 12);
  }
  // The blocks' FMAs against as many alone: 2 · 64 · 24 at D = 64, 4 · 64 · 24 at D = 128.
  constexpr long kBlockIterations = 200'000;
  const double blocks_64 = seconds_per_iteration(fma_128x24, kBlockIterations) /
                           seconds_per_iteration(attention_blocks_64, kBlockIterations);
  const double blocks_128 = seconds_per_iteration(fma_256x24, kBlockIterations / 2) /
                            seconds_per_iteration(attention_blocks_128, kBlockIterations / 2);
  std::printf("attention's register blocks (QK^T, exp2, P.V; operands in L1), %% of the FMA rate: "
              "D = 64 %.1f, D = 128 %.1f\n",
              100 * blocks_64, 100 * blocks_128);
}
