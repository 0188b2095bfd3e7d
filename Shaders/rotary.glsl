// Rotary embedding of one value of a head, for shaders that rotate as they read (kv_store.comp, attention.comp) the
// vectors rope.comp rotates in place: the same table (cos, sin per position and pair, from the host), pairs and
// floats. The including shader declares `table[]`, and push constants `rotaryHalf` (0: no rotation) and `interleaved`
// for ROTATED_ELEMENT.

/// The column that column `i` of a head (of 2·half) pairs with: i ± half, or its neighbour when interleaved.
uint rotaryPartner(uint i, uint half_, uint interleaved) { return interleaved != 0 ? i ^ 1u : (i < half_ ? i + half_ : i - half_); }

/// Column `i` of a head at `position` after rotation, from its value and its partner's: x·cos − y·sin for the first
/// of a pair, y·cos + x·sin for the second, as rope.comp computes them.
float rotated(float partner, float own, uint i, uint position, uint half_, uint interleaved) {
    uint pair = interleaved != 0 ? i / 2 : i % half_;
    bool second = interleaved != 0 ? (i & 1u) != 0 : i >= half_;
    float cosine = table[2 * (position * half_ + pair)], sine = table[2 * (position * half_ + pair) + 1];
    precise float result = second ? own * cosine + partner * sine : own * cosine - partner * sine;
    return result;
}

/// Element `i` of the head starting at `base` of `buffer` at `position`, rotated where `p.rotaryHalf` > 0 (a macro:
/// GLSL functions take no buffers).
#define ROTATED_ELEMENT(buffer, base, i, position) \
    (p.rotaryHalf == 0 ? buffer[(base) + (i)] \
                       : rotated(buffer[(base) + rotaryPartner(i, p.rotaryHalf, p.interleaved)], buffer[(base) + (i)], i, position, p.rotaryHalf, p.interleaved))
