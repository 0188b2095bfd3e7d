/// Which program's numbering of ggml tensor types a GGUF file follows.
///
/// Upstream ggml and bitnet.cpp's fork agree up to id 35 (TQ2_0) and then diverge: the fork uses
/// 36 I2_S, 37 I8_S, 38 TL1, 39 TL2, while upstream has never written 36–38 and uses 39 for MXFP4.
public enum GGUFDialect: String, Sendable, Hashable, CustomStringConvertible {
    /// llama.cpp / ggml.
    case ggml
    /// microsoft/BitNet (bitnet.cpp).
    case bitnetCpp = "bitnet.cpp"

    public var description: String { rawValue }

    /// Architectures only bitnet.cpp writes.
    static let bitnetCppArchitectures: Set<String> = ["bitnet-b1.58", "bitnet-25"]
}

/// A ggml tensor type, as stored in GGUF tensor infos.
public enum GGMLType: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q8_1
    case q2_K, q3_K, q4_K, q5_K, q6_K, q8_K
    case iq2_xxs, iq2_xs, iq3_xxs, iq1_s, iq4_nl, iq3_s, iq2_s, iq4_xs
    case i8, i16, i32, i64, f64, iq1_m, bf16
    case tq1_0, tq2_0, mxfp4, nvfp4, q1_0
    /// bitnet.cpp: 2-bit ternary with a per-tensor float32 scale (see `I2S` in BitNetQuantization).
    case i2_s
    /// bitnet.cpp's other fork-only types: recognized, their data is not interpreted.
    case i8_s, tl1, tl2

    /// ggml's name (`ggml_type_name`): "f32", "tq2_0", "q6_K", "i2_s"…
    public var name: String {
        switch self {
        case .f32: "f32"
        case .f16: "f16"
        case .q4_0: "q4_0"
        case .q4_1: "q4_1"
        case .q5_0: "q5_0"
        case .q5_1: "q5_1"
        case .q8_0: "q8_0"
        case .q8_1: "q8_1"
        case .q2_K: "q2_K"
        case .q3_K: "q3_K"
        case .q4_K: "q4_K"
        case .q5_K: "q5_K"
        case .q6_K: "q6_K"
        case .q8_K: "q8_K"
        case .iq2_xxs: "iq2_xxs"
        case .iq2_xs: "iq2_xs"
        case .iq3_xxs: "iq3_xxs"
        case .iq1_s: "iq1_s"
        case .iq4_nl: "iq4_nl"
        case .iq3_s: "iq3_s"
        case .iq2_s: "iq2_s"
        case .iq4_xs: "iq4_xs"
        case .i8: "i8"
        case .i16: "i16"
        case .i32: "i32"
        case .i64: "i64"
        case .f64: "f64"
        case .iq1_m: "iq1_m"
        case .bf16: "bf16"
        case .tq1_0: "tq1_0"
        case .tq2_0: "tq2_0"
        case .mxfp4: "mxfp4"
        case .nvfp4: "nvfp4"
        case .q1_0: "q1_0"
        case .i2_s: "i2_s"
        case .i8_s: "i8_s"
        case .tl1: "tl1"
        case .tl2: "tl2"
        }
    }

    public var description: String { name }

    /// The type whose ggml name is `name` (case-insensitive), if any.
    public init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.name.lowercased() == name.lowercased() }) else { return nil }
        self = match
    }

    /// The id this type has in a file of `dialect`; nil if that dialect has no such type.
    public func id(in dialect: GGUFDialect) -> UInt32? {
        switch self {
        case .mxfp4: dialect == .ggml ? 39 : nil
        case .i2_s: dialect == .bitnetCpp ? 36 : nil
        case .i8_s: dialect == .bitnetCpp ? 37 : nil
        case .tl1: dialect == .bitnetCpp ? 38 : nil
        case .tl2: dialect == .bitnetCpp ? 39 : nil
        default: Self.sharedIDs[self]
        }
    }

    private static let sharedIDs: [GGMLType: UInt32] = [
        .f32: 0, .f16: 1, .q4_0: 2, .q4_1: 3, .q5_0: 6, .q5_1: 7, .q8_0: 8, .q8_1: 9,
        .q2_K: 10, .q3_K: 11, .q4_K: 12, .q5_K: 13, .q6_K: 14, .q8_K: 15,
        .iq2_xxs: 16, .iq2_xs: 17, .iq3_xxs: 18, .iq1_s: 19, .iq4_nl: 20, .iq3_s: 21, .iq2_s: 22, .iq4_xs: 23,
        .i8: 24, .i16: 25, .i32: 26, .i64: 27, .f64: 28, .iq1_m: 29, .bf16: 30, .tq1_0: 34, .tq2_0: 35,
        .nvfp4: 40, .q1_0: 41,
    ]
    private static let typesBySharedID: [UInt32: GGMLType] = Dictionary(uniqueKeysWithValues: sharedIDs.map { ($1, $0) })

    /// The type with `id` in `dialect`, if that dialect defines it.
    public init?(id: UInt32, dialect: GGUFDialect) {
        if let shared = Self.typesBySharedID[id] {
            self = shared
            return
        }
        switch (id, dialect) {
        case (36, .bitnetCpp): self = .i2_s
        case (37, .bitnetCpp): self = .i8_s
        case (38, .bitnetCpp): self = .tl1
        case (39, .bitnetCpp): self = .tl2
        case (39, .ggml): self = .mxfp4
        default: return nil
        }
    }

    /// The storage of a block type: `valuesPerBlock` values take `bytesPerBlock` bytes.
    public struct BlockLayout: Sendable, Hashable {
        public let valuesPerBlock: Int
        public let bytesPerBlock: Int
    }

    /// Block geometry of ggml's regular types; nil for I2_S (per-tensor tail) and the fork types whose
    /// layout is not published (I8_S, TL1, TL2).
    public var blockLayout: BlockLayout? {
        let (values, bytes): (Int, Int)
        switch self {
        case .f32, .i32: (values, bytes) = (1, 4)
        case .f16, .bf16, .i16: (values, bytes) = (1, 2)
        case .i8: (values, bytes) = (1, 1)
        case .i64, .f64: (values, bytes) = (1, 8)
        case .q4_0, .iq4_nl: (values, bytes) = (32, 18)
        case .q4_1: (values, bytes) = (32, 20)
        case .q5_0: (values, bytes) = (32, 22)
        case .q5_1: (values, bytes) = (32, 24)
        case .q8_0: (values, bytes) = (32, 34)
        case .q8_1: (values, bytes) = (32, 36)
        case .mxfp4: (values, bytes) = (32, 17)
        case .nvfp4: (values, bytes) = (64, 36)
        case .q1_0: (values, bytes) = (128, 18)
        case .q2_K: (values, bytes) = (256, 84)
        case .q3_K: (values, bytes) = (256, 110)
        case .q4_K: (values, bytes) = (256, 144)
        case .q5_K: (values, bytes) = (256, 176)
        case .q6_K: (values, bytes) = (256, 210)
        case .q8_K: (values, bytes) = (256, 292)
        case .iq2_xxs: (values, bytes) = (256, 66)
        case .iq2_xs: (values, bytes) = (256, 74)
        case .iq3_xxs: (values, bytes) = (256, 98)
        case .iq1_s: (values, bytes) = (256, 50)
        case .iq3_s: (values, bytes) = (256, 110)
        case .iq2_s: (values, bytes) = (256, 82)
        case .iq4_xs: (values, bytes) = (256, 136)
        case .iq1_m: (values, bytes) = (256, 56)
        case .tq1_0: (values, bytes) = (256, 54)
        case .tq2_0: (values, bytes) = (256, 66)
        case .i2_s, .i8_s, .tl1, .tl2: return nil
        }
        return BlockLayout(valuesPerBlock: values, bytesPerBlock: bytes)
    }

    /// Values along `ne0` must be a multiple of this.
    public var rowMultiple: Int {
        if self == .i2_s { return 128 }
        return blockLayout?.valuesPerBlock ?? 1
    }

    /// Bytes of a tensor of this type with `ne0 = rowLength` and `elementCount` values in all; nil for
    /// the fork types with an unpublished layout. The caller has checked `rowLength % rowMultiple == 0`.
    public func byteCount(elementCount: Int) -> Int? {
        if self == .i2_s { return elementCount / 4 + 32 }
        guard let layout = blockLayout else { return nil }
        let (product, overflow) = (elementCount / layout.valuesPerBlock).multipliedReportingOverflow(by: layout.bytesPerBlock)
        return overflow ? nil : product
    }
}
