// Rotary embedding of one value of a head, for shaders that rotate as they read (kv_store.comp, attention.comp) the
// vectors rope.comp rotates in place: the same table (cos, sin per position and pair, from the host), pairs and
// floats. The including shader declares `table[]`.

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
