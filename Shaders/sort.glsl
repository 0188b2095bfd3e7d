// A bitonic sort of SORT_SIZE (value, index) pairs in shared memory, best first: the larger value, the lower index
// among equal ones (the order of the host's LogitRows.largest). Exactly the 16 KB every Vulkan device offers a
// workgroup; the including shader declares no other shared variable.
const uint SORT_SIZE = 2048;
const uint NONE = 0xFFFFFFFFu;
shared float sortValues[SORT_SIZE];
shared uint sortIndices[SORT_SIZE];

/// Whether (value a, index a) ranks before (value b, index b).
bool ranksBefore(float valueA, uint indexA, float valueB, uint indexB) {
    return valueA > valueB || (valueA == valueB && indexA < indexB);
}

/// Sorts the pairs; every invocation calls it, after writing its pairs. Returns after a barrier.
void sortBestFirst() {
    uint t = gl_LocalInvocationID.x;
    for (uint size = 2; size <= SORT_SIZE; size <<= 1) {
        for (uint stride = size >> 1; stride > 0; stride >>= 1) {
            barrier();
            for (uint i = t; i < SORT_SIZE / 2; i += WORKGROUP) {
                uint a = (i / stride) * 2 * stride + i % stride, b = a + stride;
                float valueA = sortValues[a], valueB = sortValues[b];
                uint indexA = sortIndices[a], indexB = sortIndices[b];
                // Runs of `size` alternate best first and worst first until the last, which is all best first.
                bool swap = (a & size) == 0 ? ranksBefore(valueB, indexB, valueA, indexA) : ranksBefore(valueA, indexA, valueB, indexB);
                if (swap) {
                    sortValues[a] = valueB;
                    sortValues[b] = valueA;
                    sortIndices[a] = indexB;
                    sortIndices[b] = indexA;
                }
            }
        }
    }
    barrier();
}
