/// The type tag of a GGUF metadata value (`gguf_type`).
public enum GGUFValueType: UInt32, Sendable, Hashable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// gguf-py's name of the type ("UINT8", "STRING"…).
    public var name: String {
        switch self {
        case .uint8: "UINT8"
        case .int8: "INT8"
        case .uint16: "UINT16"
        case .int16: "INT16"
        case .uint32: "UINT32"
        case .int32: "INT32"
        case .float32: "FLOAT32"
        case .bool: "BOOL"
        case .string: "STRING"
        case .array: "ARRAY"
        case .uint64: "UINT64"
        case .int64: "INT64"
        case .float64: "FLOAT64"
        }
    }

    /// Smallest encoded size of one value of this type (a string is at least its 8-byte length).
    var minimumEncodedSize: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }
}

/// A GGUF metadata value. Arrays keep their element type even when empty, so they write back unchanged.
public enum GGUFValue: Sendable, Hashable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    case array(GGUFArray)

    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .uint64: .uint64
        case .int64: .int64
        case .float32: .float32
        case .float64: .float64
        case .bool: .bool
        case .string: .string
        case .array: .array
        }
    }

    /// Any integer value widened to `Int`, if it fits.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        default: nil
        }
    }

    /// A float or integer value as `Double`.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: intValue.map(Double.init)
        }
    }

    public var stringValue: String? {
        if case .string(let v) = self { return v }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let v) = self { return v }
        return nil
    }

    public var arrayValue: GGUFArray? {
        if case .array(let v) = self { return v }
        return nil
    }
}

/// A typed GGUF array. Numbers are stored unboxed, so memory stays proportional to the file.
public enum GGUFArray: Sendable, Hashable {
    case uint8([UInt8]), int8([Int8]), uint16([UInt16]), int16([Int16]), uint32([UInt32]), int32([Int32])
    case uint64([UInt64]), int64([Int64]), float32([Float]), float64([Double]), bool([Bool]), string([String])
    /// An array of arrays (GGUF allows nesting; each inner array has its own element type).
    case array([GGUFArray])

    public var elementType: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .uint64: .uint64
        case .int64: .int64
        case .float32: .float32
        case .float64: .float64
        case .bool: .bool
        case .string: .string
        case .array: .array
        }
    }

    public var count: Int {
        switch self {
        case .uint8(let v): v.count
        case .int8(let v): v.count
        case .uint16(let v): v.count
        case .int16(let v): v.count
        case .uint32(let v): v.count
        case .int32(let v): v.count
        case .uint64(let v): v.count
        case .int64(let v): v.count
        case .float32(let v): v.count
        case .float64(let v): v.count
        case .bool(let v): v.count
        case .string(let v): v.count
        case .array(let v): v.count
        }
    }

    /// Element `index` as a scalar value (an inner array for nested arrays).
    public subscript(index: Int) -> GGUFValue {
        switch self {
        case .uint8(let v): .uint8(v[index])
        case .int8(let v): .int8(v[index])
        case .uint16(let v): .uint16(v[index])
        case .int16(let v): .int16(v[index])
        case .uint32(let v): .uint32(v[index])
        case .int32(let v): .int32(v[index])
        case .uint64(let v): .uint64(v[index])
        case .int64(let v): .int64(v[index])
        case .float32(let v): .float32(v[index])
        case .float64(let v): .float64(v[index])
        case .bool(let v): .bool(v[index])
        case .string(let v): .string(v[index])
        case .array(let v): .array(v[index])
        }
    }

    /// The elements as strings, if this is a string array.
    public var strings: [String]? {
        if case .string(let v) = self { return v }
        return nil
    }

    /// Integer elements widened to `Int` (nil for non-integer arrays or values that do not fit).
    public var integers: [Int]? {
        switch self {
        case .uint8(let v): v.map(Int.init)
        case .int8(let v): v.map(Int.init)
        case .uint16(let v): v.map(Int.init)
        case .int16(let v): v.map(Int.init)
        case .uint32(let v): v.map(Int.init)
        case .int32(let v): v.map(Int.init)
        case .int64(let v): v.map(Int.init)
        case .uint64(let v): v.allSatisfy { $0 <= UInt64(Int.max) } ? v.map { Int($0) } : nil
        default: nil
        }
    }

    /// Float elements widened to `Float`.
    public var floats: [Float]? {
        switch self {
        case .float32(let v): v
        case .float64(let v): v.map(Float.init)
        default: nil
        }
    }
}

/// GGUF key–value metadata, in file order, with lookup by key. Keys are unique.
public struct GGUFMetadata: Sendable, Hashable, Sequence {
    public struct Entry: Sendable, Hashable {
        public var key: String
        public var value: GGUFValue

        public init(key: String, value: GGUFValue) {
            self.key = key
            self.value = value
        }
    }

    public private(set) var entries: [Entry] = []
    private var indexByKey: [String: Int] = [:]

    public init() {}

    public var count: Int { entries.count }
    public func makeIterator() -> IndexingIterator<[Entry]> { entries.makeIterator() }

    /// The value stored under `key`; setting replaces it in place or appends a new entry.
    public subscript(key: String) -> GGUFValue? {
        get { indexByKey[key].map { entries[$0].value } }
        set {
            if let index = indexByKey[key] {
                if let newValue {
                    entries[index].value = newValue
                } else {
                    entries.remove(at: index)
                    indexByKey = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.key, $0) })
                }
            } else if let newValue {
                indexByKey[key] = entries.count
                entries.append(Entry(key: key, value: newValue))
            }
        }
    }

    /// Appends an entry read from a file; false if the key is already present.
    mutating func appendUnique(_ entry: Entry) -> Bool {
        guard indexByKey[entry.key] == nil else { return false }
        indexByKey[entry.key] = entries.count
        entries.append(entry)
        return true
    }

    public func string(_ key: String) -> String? { self[key]?.stringValue }
    public func int(_ key: String) -> Int? { self[key]?.intValue }
    public func double(_ key: String) -> Double? { self[key]?.doubleValue }
    public func bool(_ key: String) -> Bool? { self[key]?.boolValue }
    public func array(_ key: String) -> GGUFArray? { self[key]?.arrayValue }
}
