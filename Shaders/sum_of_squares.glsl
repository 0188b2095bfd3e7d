// Σx² of a row in the order PyTorch's CPU sum adds it, as the CPU backend's pytorch_sum_of_squares (forward_ops.c)
// does: the row as vectors of 8 (1 below 8 values), four accumulators taking every fourth vector, each adding
// chunks of 16 (more for huge rows) and passing chunk sums up through three more levels; the vectors left over go
// to the first accumulator; the four are added in order; then the `n mod lanes` last values and the lanes, in order.
// Each of the 32 (lane, accumulator) chains is one invocation's; invocation 0 adds their results. The including
// shader defines `float rowValue(uint base, uint i)`, and every invocation of the workgroup (at least 32) calls
// sumOfSquares together.
shared float chainSums[32];

float sumOfSquares(uint base, uint columns) {
    uint t = gl_LocalInvocationID.x;
    uint lanes = columns >= 8 ? 8 : 1, vectors = columns / lanes, groups = vectors / 4;
    uint power = max(4u, (groups <= 2 ? 1u : uint(findMSB(groups - 1)) + 1u) / 4u);
    uint step = 1u << power, mask = step - 1u;
    if (t < 4 * lanes) {
        uint k = t / lanes, l = t % lanes;
        precise float level0 = 0, level1 = 0, level2 = 0, level3 = 0;
        uint i = 0;
        while (i + step <= groups) {
            for (uint j = 0; j < step; j++, i++) {
                float x = rowValue(base, (i * 4 + k) * lanes + l);
                precise float square = x * x;
                level0 += square;
            }
            level1 += level0;
            level0 = 0;
            if ((i & (mask << power)) == 0) {
                level2 += level1;
                level1 = 0;
                if ((i & (mask << (2 * power))) == 0) {
                    level3 += level2;
                    level2 = 0;
                }
            }
        }
        for (; i < groups; i++) {
            float x = rowValue(base, (i * 4 + k) * lanes + l);
            precise float square = x * x;
            level0 += square;
        }
        level0 += level1;
        level0 += level2;
        level0 += level3;
        if (k == 0) {
            for (uint v = groups * 4; v < vectors; v++) {
                float x = rowValue(base, v * lanes + l);
                precise float square = x * x;
                level0 += square;
            }
        }
        chainSums[t] = level0;
    }
    barrier();
    precise float total = 0;
    if (t == 0) {
        for (uint i = vectors * lanes; i < columns; i++) {
            float x = rowValue(base, i);
            precise float square = x * x;
            total += square;
        }
        for (uint l = 0; l < lanes; l++) {
            precise float lane = chainSums[l];
            for (uint k = 1; k < 4; k++) lane += chainSums[k * lanes + l];
            total += lane;
        }
    }
    return total;  // invocation 0's
}
