// Ternary weights as the BitLinear shaders read them. Weights are repacked at upload: 16 codes w + 1 ∈ {0, 1, 2}
// per word, code 4s + j of a word at bit 8j + 2s, so (word >> 2s) & 0x03030303 is four codes as packed bytes that
// meet activation word 4·(word index) + s. INTEGER_DOT: the packed 4×8-bit dot product instruction.
#ifdef INTEGER_DOT
#extension GL_EXT_spirv_intrinsics : require
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int packedSignedDot(uint a, uint b, spirv_literal int format);
#endif

/// Codes 4s…4s+3 of a weight word as four signed bytes -1, 0, 1 (no byte carries: a code plus 0x7F is at most 0x81).
uint signedCodes(uint word, uint s) { return (((word >> (2 * s)) & 0x03030303u) + 0x7F7F7F7Fu) ^ 0x80808080u; }

/// The dot product of two words of four signed bytes.
int dot4(uint a, uint b) {
#ifdef INTEGER_DOT
    return packedSignedDot(a, b, 0);
#else
    int sum = 0;
    for (int j = 0; j < 4; j++) sum += bitfieldExtract(int(a), 8 * j, 8) * bitfieldExtract(int(b), 8 * j, 8);
    return sum;
#endif
}
