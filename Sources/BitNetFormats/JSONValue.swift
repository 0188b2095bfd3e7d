import Foundation

/// A JSON document as a plain Swift value: what `config.json`, safetensors headers and our `--json`
/// outputs are made of. Object keys keep their insertion order when serialized.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.double(let a), .double(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(serialized())
    }

    /// Member `key` of an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members.first { $0.0 == key }?.1 }
        return nil
    }

    public var stringValue: String? { if case .string(let v) = self { v } else { nil } }
    public var intValue: Int? {
        switch self {
        case .int(let v): v
        case .double(let v): v.rounded() == v && v.magnitude < 9.0e15 ? Int(v) : nil
        default: nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .int(let v): Double(v)
        case .double(let v): v
        default: nil
        }
    }
    public var arrayValue: [JSONValue]? { if case .array(let v) = self { v } else { nil } }
    public var objectValue: [(String, JSONValue)]? { if case .object(let v) = self { v } else { nil } }

    /// Parses JSON text (RFC 8259); throws ``FormatError`` with code `invalidHeader` on malformed input.
    /// Object members keep their order in the text; nesting deeper than 128 levels is rejected.
    public static func parse(_ data: Data) throws -> JSONValue {
        try data.withUnsafeBytes { bytes in
            var parser = JSONParser(bytes: bytes)
            parser.skipWhitespace()
            let value = try parser.parseValue(depth: 0)
            parser.skipWhitespace()
            guard parser.offset == bytes.count else { throw parser.error("unexpected text after the JSON value") }
            return value
        }
    }

    /// Compact JSON text (or indented with `pretty`), keys in their stored order.
    public func serialized(pretty: Bool = false) -> String {
        var output = ""
        write(to: &output, pretty: pretty, indent: 0)
        return output
    }

    private func write(to output: inout String, pretty: Bool, indent: Int) {
        let newline = pretty ? "\n" + String(repeating: "  ", count: indent + 1) : ""
        let closing = pretty ? "\n" + String(repeating: "  ", count: indent) : ""
        switch self {
        case .null: output += "null"
        case .bool(let v): output += v ? "true" : "false"
        case .int(let v): output += String(v)
        case .double(let v): output += v.isFinite ? Self.number(v) : "null"
        case .string(let v): Self.quote(v, into: &output)
        case .array(let elements):
            if elements.isEmpty { output += "[]"; return }
            if pretty, elements.allSatisfy(\.isScalar) {
                output += "[" + elements.map { $0.serialized() }.joined(separator: ", ") + "]"
                return
            }
            output += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { output += "," }
                output += newline
                element.write(to: &output, pretty: pretty, indent: indent + 1)
            }
            output += closing + "]"
        case .object(let members):
            if members.isEmpty { output += "{}"; return }
            output += "{"
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { output += "," }
                output += newline
                Self.quote(key, into: &output)
                output += pretty ? ": " : ":"
                value.write(to: &output, pretty: pretty, indent: indent + 1)
            }
            output += closing + "}"
        }
    }

    private var isScalar: Bool {
        switch self {
        case .array, .object: false
        default: true
        }
    }

    private static func number(_ value: Double) -> String {
        if value.rounded() == value, value.magnitude < 1e15 { return String(Int(value)) + ".0" }
        return "\(value)"
    }

    private static func quote(_ string: String, into output: inout String) {
        output += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case _ where scalar.value < 0x20:
                output += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: output.unicodeScalars.append(scalar)
            }
        }
        output += "\""
    }
}

/// A small recursive-descent JSON parser over untrusted bytes.
private struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    static let maximumDepth = 128

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    func error(_ message: String) -> FormatError {
        FormatError(.invalidHeader, "malformed JSON at byte \(offset): \(message)")
    }

    var current: UInt8? { offset < bytes.count ? bytes[offset] : nil }

    mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { offset += 1 }
    }

    mutating func expect(_ literal: String) throws {
        for byte in literal.utf8 {
            guard current == byte else { throw error("expected '\(literal)'") }
            offset += 1
        }
    }

    mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth < Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth)") }
        switch current {
        case UInt8(ascii: "{"):
            offset += 1
            var members: [(String, JSONValue)] = []
            var keys = Set<String>()
            skipWhitespace()
            if current == UInt8(ascii: "}") { offset += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard current == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let key = try parseString()
                // Readers look members up by name: a second one with the same name would be ignored by
                // some and kept by others, so the document is refused.
                guard keys.insert(key).inserted else { throw error("member '\(key)' appears twice in one object") }
                skipWhitespace()
                try expect(":")
                skipWhitespace()
                members.append((key, try parseValue(depth: depth + 1)))
                skipWhitespace()
                if current == UInt8(ascii: ",") { offset += 1; continue }
                try expect("}")
                return .object(members)
            }
        case UInt8(ascii: "["):
            offset += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if current == UInt8(ascii: "]") { offset += 1; return .array(elements) }
            while true {
                skipWhitespace()
                elements.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                if current == UInt8(ascii: ",") { offset += 1; continue }
                try expect("]")
                return .array(elements)
            }
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case .some(let byte) where byte == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte):
            return try parseNumber()
        case .some: throw error("unexpected character")
        case .none: throw error("unexpected end of input")
        }
    }

    mutating func parseNumber() throws -> JSONValue {
        let start = offset
        var isInteger = true
        while let byte = current, "0123456789-+.eE".utf8.contains(byte) {
            if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") { isInteger = false }
            offset += 1
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
        if isInteger, let value = Int(text) { return .int(value) }
        guard let value = Double(text), value.isFinite else { throw error("invalid number '\(text)'") }
        return .double(value)
    }

    mutating func parseString() throws -> String {
        offset += 1  // opening quote
        var scalars = String.UnicodeScalarView()
        var runStart = offset
        func flushRun(_ parser: JSONParser, upTo end: Int) throws {
            guard let run = String(validating: UnsafeRawBufferPointer(rebasing: parser.bytes[runStart..<end]), as: UTF8.self) else {
                throw parser.error("string is not valid UTF-8")
            }
            scalars.append(contentsOf: run.unicodeScalars)
        }
        while true {
            guard let byte = current else { throw error("unterminated string") }
            if byte == UInt8(ascii: "\"") {
                try flushRun(self, upTo: offset)
                offset += 1
                return String(scalars)
            }
            if byte < 0x20 { throw error("control character in string") }
            if byte != UInt8(ascii: "\\") { offset += 1; continue }
            try flushRun(self, upTo: offset)
            offset += 1
            guard let escape = current else { throw error("unterminated escape") }
            offset += 1
            switch escape {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var code = try parseHex4()
                if (0xD800..<0xDC00).contains(code) {
                    try expect("\\u")
                    let low = try parseHex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
                scalars.append(scalar)
            default: throw error("invalid escape")
            }
            runStart = offset
        }
    }

    mutating func parseHex4() throws -> UInt32 {
        guard offset + 4 <= bytes.count,
              let value = UInt32(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 4]), as: UTF8.self), radix: 16)
        else { throw error("invalid \\u escape") }
        offset += 4
        return value
    }
}
