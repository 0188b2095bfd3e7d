// Run-time choice of the kernels' instruction set: one binary runs on every CPU of its architecture. The level
// is found once when the library loads (CPUID through __builtin_cpu_supports on x86; on Arm64 HWCAP, or sysctl on
// Apple), capped by BITNET_KERNELS, and a thread may force a lower one for tests. Each matmul looks its table up
// once, on the calling thread.
#define _GNU_SOURCE
#include "kernels_internal.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef BITNET_ARM64
#if defined(__APPLE__)
#include <sys/sysctl.h>
#elif defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
static const char *const level_names[BITNET_LEVEL_COUNT] = {"scalar", "neondot"};
#else
static const char *const level_names[BITNET_LEVEL_COUNT] = {"scalar", "avx2", "avxvnni", "avx512vnni"};
#endif

/// A kernel whose tiles read the stored rows; activations in their own order where `prepare` is given.
#define STORED(tile, prepare, prepared_block_bytes, rows, tokens) {tile, prepare, prepared_block_bytes, NULL, 0, rows, tokens}
/// None: the driver uses the level's other kernel.
#define NONE {NULL, NULL, 0, NULL, 0, 0, 0}

/// The 256-bit kernels of AVX2 or AVX-VNNI (`tile` names the level's tiles). TQ1_0's prompts unpack each chunk of
/// rows into TQ2_0's density, 64 bytes a block, once for every token, as the AVX-512 level's do.
#define KERNELS_256(tile)                                                                                          \
    {{STORED(bitnet_tq2_0_tile_##tile, NULL, 256, BITNET_256_DECODE_ROWS, 1),                                          \
      STORED(bitnet_tq1_0_tile_##tile, bitnet_prepare_tq1_0, 640, BITNET_256_DECODE_ROWS, 1),                        \
      STORED(bitnet_i2_s_tile_##tile, NULL, 128, BITNET_256_DECODE_ROWS, 1)},                                          \
     {STORED(bitnet_tq2_0_tile_##tile, NULL, 256, BITNET_256_PROMPT_ROWS, BITNET_256_PROMPT_TOKENS),                   \
      {bitnet_fields64_tile_##tile, bitnet_prepare_fields_256, 256, bitnet_tq1_0_unpack_256, 64, BITNET_256_PROMPT_ROWS, \
       BITNET_256_PROMPT_TOKENS},                                                                                   \
      STORED(bitnet_i2_s_tile_##tile, NULL, 128, BITNET_256_PROMPT_ROWS, BITNET_256_PROMPT_TOKENS)},                   \
     {NONE, NONE, NONE},                                                                                            \
     {bitnet_dot_f32_avx2, bitnet_dot_f16_avx2, bitnet_dot_bf16_avx2, bitnet_dot_q8_0_avx2, NULL},                  \
     {bitnet_dot4_f32_avx2, bitnet_dot4_f16_avx2, NULL, NULL, NULL},                                                \
     {NULL, bitnet_rows_f16_avx2, bitnet_rows_bf16_avx2, NULL, NULL},                                               \
     bitnet_dot_q6_k_avx2,                                                                                          \
     bitnet_rows_q6_k_avx2,                                                                                         \
     {bitnet_lookup_pack_panel_avx2, bitnet_lookup_tables_avx2, bitnet_lookup_panel_avx2,                         \
      {{bitnet_fields64_tile_##tile, NULL, 256, bitnet_lookup_unpack_fields_avx2, 64, BITNET_256_PROMPT_ROWS,          \
        BITNET_256_PROMPT_TOKENS},                                                                                  \
       {bitnet_fields64_tile_##tile, NULL, 256, bitnet_lookup_unpack_fields_avx2, 64, BITNET_256_PROMPT_ROWS,          \
        BITNET_256_PROMPT_TOKENS},                                                                                  \
       {bitnet_i2_s_tile_##tile, NULL, 128, bitnet_lookup_unpack_i2_s_avx2, 32, BITNET_256_PROMPT_ROWS,               \
        BITNET_256_PROMPT_TOKENS}}}}

#ifdef BITNET_X86
/// The AVX-VNNI level's kernels EVEX-encoded, for CPUs with AVX-512 VNNI but not AVX-VNNI.
static const bitnet_kernel_table avxvnni_evex_table = KERNELS_256(avxvnni_evex);
#endif

/// Written once, before any thread can call a kernel, where the AVX-VNNI level takes its EVEX-encoded tiles.
static bitnet_kernel_table tables[BITNET_LEVEL_COUNT] = {
    {{STORED(bitnet_tq2_0_tile_scalar, NULL, 256, 2, 1), STORED(bitnet_tq1_0_tile_scalar, bitnet_prepare_tq1_0, 640, 2, 1),
      STORED(bitnet_i2_s_tile_scalar, NULL, 128, 2, 1)},
     {STORED(bitnet_tq2_0_tile_scalar, NULL, 256, 4, 4), STORED(bitnet_tq1_0_tile_scalar, bitnet_prepare_tq1_0, 640, 4, 4),
      STORED(bitnet_i2_s_tile_scalar, NULL, 128, 4, 4)},
     {NONE, NONE, NONE},
     {bitnet_dot_f32_scalar, bitnet_dot_f16_scalar, bitnet_dot_bf16_scalar, bitnet_dot_q8_0_scalar, NULL},
     {NULL},
     {NULL},
     bitnet_dot_q6_k_scalar},
#ifdef BITNET_X86
    KERNELS_256(avx2),
    KERNELS_256(avxvnni),
    {{STORED(bitnet_tq2_0_tile_vnni, bitnet_prepare_lanes_vnni, 256, BITNET_VNNI_DECODE_ROWS, 1),
      STORED(bitnet_tq1_0_tile_vnni, bitnet_prepare_tq1_0, 640, 2, 1),
      STORED(bitnet_i2_s_tile_vnni, bitnet_prepare_lanes_vnni, 128, BITNET_VNNI_DECODE_ROWS, 1)},
     // TQ1_0's prompts unpack each chunk of rows into TQ2_0's density, 64 bytes a block, once for every token.
     {STORED(bitnet_tq2_0_tile_vnni, bitnet_prepare_lanes_vnni, 256, BITNET_VNNI_PROMPT_ROWS, 4),
      {bitnet_fields_tile_vnni, bitnet_prepare_lanes_vnni, 256, bitnet_tq1_0_unpack_vnni, 64, BITNET_VNNI_PROMPT_ROWS, 4},
      STORED(bitnet_i2_s_tile_vnni, bitnet_prepare_lanes_vnni, 128, BITNET_VNNI_PROMPT_ROWS, 4)},
     {STORED(bitnet_tq2_0_tile_vnni, bitnet_prepare_lanes_vnni, 256, 3, 8),
      {bitnet_fields_tile_vnni, bitnet_prepare_lanes_vnni, 256, bitnet_tq1_0_unpack_vnni, 64, 3, 8},
      STORED(bitnet_i2_s_tile_vnni, bitnet_prepare_lanes_vnni, 128, 3, 8)},
     {bitnet_dot_f32_avx2, bitnet_dot_f16_avx2, bitnet_dot_bf16_avx2, bitnet_dot_q8_0_avx2, NULL},
     {bitnet_dot4_f32_avx2, bitnet_dot4_f16_avx2, NULL, NULL, NULL},
     {NULL, bitnet_rows_f16_avx512, bitnet_rows_bf16_avx2, NULL, NULL},
     bitnet_dot_q6_k_avx512,
     bitnet_rows_q6_k_avx512},
#elif defined(BITNET_ARM64)
    // The tiles read the activations as they are (256 or 128 bytes a block); float dots other than f32 and f16,
    // and Q6_K, are the scalar ones.
    {{STORED(bitnet_tq2_0_tile_neon, NULL, 256, 2, 1), STORED(bitnet_tq1_0_tile_neon, NULL, 256, 2, 1),
      STORED(bitnet_i2_s_tile_neon, NULL, 128, 2, 1)},
     {STORED(bitnet_tq2_0_tile_neon, NULL, 256, 2, 4), STORED(bitnet_tq1_0_tile_neon, NULL, 256, 2, 4),
      STORED(bitnet_i2_s_tile_neon, NULL, 128, 2, 4)},
     {NONE, NONE, NONE},
     {bitnet_dot_f32_neon, bitnet_dot_f16_neon, bitnet_dot_bf16_scalar, bitnet_dot_q8_0_scalar, NULL},
     {NULL},
     {NULL},
     bitnet_dot_q6_k_scalar},
#endif
};

#ifdef BITNET_ARM64
/// Whether this CPU has the Armv8.2 dot-product instructions (`sdot`).
static int cpu_has_dotprod(void) {
#if defined(__APPLE__)
    int value = 0;
    size_t size = sizeof value;
    return sysctlbyname("hw.optional.arm.FEAT_DotProd", &value, &size, NULL, 0) == 0 && value;
#elif defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
    return 0;
#endif
}
#endif

/// The best level this CPU runs (`cpu_level`), and that capped by BITNET_KERNELS (`default_level`): set before
/// any thread can call a kernel (a lazy first-use check was a data race between the threads of a forward pass).
static int default_level = 0;
static int cpu_level = 0;

/// A level forced on the calling thread (-1: none), so a test forcing one path never changes what other
/// threads (other tests' forward passes) compute.
static _Thread_local int forced_level = -1;

static int level_named(const char *name) {
    for (int level = 0; level < BITNET_LEVEL_COUNT; level++) {
        const char *a = name, *b = level_names[level];
        while (*a && *a == *b) { a++; b++; }
        if (*a == 0 && *b == 0) return level;
    }
    return -1;
}

__attribute__((constructor))
static void detect_cpu_features(void) {
#ifdef BITNET_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
        cpu_level = BITNET_LEVEL_AVX2;
        int avxvnni = __builtin_cpu_supports("avxvnni");
        int avx512vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                         && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
        if (avxvnni || avx512vnni) cpu_level = BITNET_LEVEL_AVXVNNI;
        if (avx512vnni) cpu_level = BITNET_LEVEL_AVX512VNNI;
        if (avx512vnni && !avxvnni) tables[BITNET_LEVEL_AVXVNNI] = avxvnni_evex_table;
    }
#elif defined(BITNET_ARM64)
    if (cpu_has_dotprod()) cpu_level = BITNET_LEVEL_NEON_DOTPROD;
#endif
    default_level = cpu_level;
    // BITNET_DECODE_LOOKUP=0 keeps every matmul on the stored rows: no lookup panels are made at load.
    const char *lookup = getenv("BITNET_DECODE_LOOKUP");
    if (lookup && lookup[0] == '0' && lookup[1] == 0)
        for (int level = 0; level < BITNET_LEVEL_COUNT; level++) tables[level].lookup = (bitnet_lookup_kernel){0};
    const char *cap = getenv("BITNET_KERNELS");
    int capped = cap && *cap ? level_named(cap) : -1;
    if (capped >= 0 && capped < default_level) default_level = capped;
}

int bitnet_level(void) { return forced_level >= 0 ? forced_level : default_level; }

const bitnet_kernel_table *bitnet_kernels_for_level(int level) { return &tables[level]; }

int bitnet_kernels_force(const char *isa) {
    if (!isa || !*isa) {
        forced_level = -1;
        return 0;
    }
    int wanted = level_named(isa);
    if (wanted < 0 || wanted > cpu_level) return -1;
    forced_level = wanted;
    return 0;
}

const char *bitnet_kernels_isa(void) { return level_names[bitnet_level()]; }

int bitnet_kernels_level_count(void) { return BITNET_LEVEL_COUNT; }

const char *bitnet_kernels_level_name(int level) {
    return level >= 0 && level < BITNET_LEVEL_COUNT ? level_names[level] : "";
}

static long read_topology(int cpu, const char *field) {
    char path[128];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/%s", cpu, field);
    FILE *file = fopen(path, "r");
    if (!file) return -1;
    long value = -1;
    if (fscanf(file, "%ld", &value) != 1) value = -1;
    fclose(file);
    return value;
}

int bitnet_physical_cores(void) {
#ifdef __linux__
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 0;
    // Distinct (package, core) pairs among the CPUs this process may run on.
    long seen[CPU_SETSIZE][2];
    int cores = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed)) continue;
        long package = read_topology(cpu, "physical_package_id"), core = read_topology(cpu, "core_id");
        if (package < 0 || core < 0) return CPU_COUNT(&allowed);
        int known = 0;
        for (int i = 0; i < cores && !known; i++) known = seen[i][0] == package && seen[i][1] == core;
        if (!known) {
            seen[cores][0] = package;
            seen[cores][1] = core;
            cores++;
        }
    }
    return cores;
#else
    return 0;
#endif
}
