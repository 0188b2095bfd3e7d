#include "fuzz_driver.h"

// Weak: a normal build has no libFuzzer and the symbol stays null; scripts/fuzz links the real one.
extern int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *, size_t)) __attribute__((weak));

int bitnet_fuzz_available(void) { return LLVMFuzzerRunDriver != 0; }

int bitnet_fuzz_run(int argc, char **argv, bitnet_fuzz_callback callback) {
    if (!LLVMFuzzerRunDriver) return -1;
    return LLVMFuzzerRunDriver(&argc, &argv, callback);
}
