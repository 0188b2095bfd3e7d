// Element (row, column) of a float matrix in its stored encoding, read from the uint array MATRIX (#defined by
// the including shader): 0 F32, 1 F16, 2 BF16, 3 Q8_0 (blocks of 32: f16 scale, 32 int8), 4 Q6_K (blocks of
// 256: 128 low-nibble bytes, 64 high-bit bytes, 16 int8 scales, f16 scale) — the layouts of the GGUF file.
const uint ENCODING_F32 = 0, ENCODING_F16 = 1, ENCODING_BF16 = 2, ENCODING_Q8_0 = 3, ENCODING_Q6_K = 4;

uint matrixByte(uint offset) { return (MATRIX[offset >> 2] >> (8 * (offset & 3))) & 0xFF; }
int matrixSignedByte(uint offset) { return int(matrixByte(offset) << 24) >> 24; }
float matrixHalf(uint offset) { return unpackHalf2x16(matrixByte(offset) | (matrixByte(offset + 1) << 8)).x; }

float matrixElement(uint encoding, uint row, uint column, uint columns) {
    uint index = row * columns + column;
    if (encoding == ENCODING_F32) return uintBitsToFloat(MATRIX[index]);
    if (encoding == ENCODING_F16) return unpackHalf2x16(MATRIX[index >> 1] >> (16 * (index & 1))).x;
    if (encoding == ENCODING_BF16) return uintBitsToFloat((index & 1) == 0 ? MATRIX[index >> 1] << 16 : MATRIX[index >> 1] & 0xFFFF0000u);
    if (encoding == ENCODING_Q8_0) {
        uint block = (index / 32) * 34;
        return matrixHalf(block) * float(matrixSignedByte(block + 2 + index % 32));
    }
    // Q6_K, as ggml's dequantize_row_q6_K lays a block out.
    uint block = (index / 256) * 210, j = index % 256;
    uint half_ = j / 128, l = j % 128, group = l / 32, lane = l % 32;
    uint low = matrixByte(block + 64 * half_ + lane + (group & 1) * 32);
    low = group < 2 ? low & 0xF : low >> 4;
    uint high = (matrixByte(block + 128 + 32 * half_ + lane) >> (2 * group)) & 3;
    int scale = matrixSignedByte(block + 192 + 8 * half_ + lane / 16 + 2 * group);
    return matrixHalf(block + 208) * float(scale) * float(int(low | (high << 4)) - 32);
}
