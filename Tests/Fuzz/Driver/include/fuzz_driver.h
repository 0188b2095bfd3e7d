#ifndef BITNET_FUZZ_DRIVER_H
#define BITNET_FUZZ_DRIVER_H

#include <stddef.h>
#include <stdint.h>

typedef int (*bitnet_fuzz_callback)(const uint8_t *data, size_t size);

/// Whether libFuzzer is linked in (the harness was built by scripts/fuzz with -sanitize=fuzzer).
int bitnet_fuzz_available(void);

/// Runs libFuzzer's driver with `argc`/`argv` on `callback`; returns its exit status.
int bitnet_fuzz_run(int argc, char **argv, bitnet_fuzz_callback callback);

#endif
