/// Splits text into the pieces BPE runs on, as the regular expressions of GPT-2 and LLaMA-3 do.
///
/// Hand-written matchers over Unicode scalars (what the `tokenizers` library's regex engine sees),
/// following each alternative of the pattern in order, including the backtracking of `\s+(?!\S)`.
enum PreTokenizerPattern: Sendable, Hashable {
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llama3
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2

    static let llama3Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    init?(regex: String) {
        switch regex {
        case Self.llama3Source: self = .llama3
        case Self.gpt2Source: self = .gpt2
        default: return nil
        }
    }

    func split(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var pieces: [String] = []
        var index = 0
        while index < scalars.count {
            let length = max(1, match(scalars, at: index))
            var piece = String.UnicodeScalarView()
            piece.append(contentsOf: scalars[index..<index + length])
            pieces.append(String(piece))
            index += length
        }
        return pieces
    }

    private func match(_ s: [Unicode.Scalar], at start: Int) -> Int {
        let count = s.count
        func isLetter(_ i: Int) -> Bool { i < count && s[i].isLetter }
        func isNumber(_ i: Int) -> Bool { i < count && s[i].isNumber }
        func isSpace(_ i: Int) -> Bool { i < count && s[i].properties.isWhitespace }
        func isNewline(_ i: Int) -> Bool { i < count && (s[i] == "\r" || s[i] == "\n") }
        func isOther(_ i: Int) -> Bool { i < count && !s[i].properties.isWhitespace && !s[i].isLetter && !s[i].isNumber }
        func run(from i: Int, _ predicate: (Int) -> Bool) -> Int {
            var j = i
            while j < count && predicate(j) { j += 1 }
            return j
        }

        // Contractions ('s, 't, 're, 've, 'm, 'll, 'd), case-insensitive for LLaMA-3.
        if s[start] == "'", start + 1 < count {
            let next = self == .llama3 ? String(s[start + 1]).lowercased() : String(s[start + 1])
            let third = start + 2 < count ? (self == .llama3 ? String(s[start + 2]).lowercased() : String(s[start + 2])) : ""
            if ["s", "t", "m", "d"].contains(next) { return 2 }
            if ["re", "ve", "ll"].contains(next + third) { return 3 }
        }

        switch self {
        case .llama3:
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if isLetter(start) { return run(from: start, isLetter) - start }
            if !isNewline(start) && !isLetter(start) && !isNumber(start) && isLetter(start + 1) {
                return run(from: start + 1, isLetter) - start
            }
            // \p{N}{1,3}
            if isNumber(start) { return min(run(from: start, isNumber) - start, 3) }
            // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
            let afterSpace = s[start] == " " ? start + 1 : start
            if isOther(afterSpace) {
                let end = run(from: afterSpace, isOther)
                return run(from: end, isNewline) - start
            }
        case .gpt2:
            let afterSpace = s[start] == " " ? start + 1 : start
            if isLetter(afterSpace) { return run(from: afterSpace, isLetter) - start }
            if isNumber(afterSpace) { return run(from: afterSpace, isNumber) - start }
            if isOther(afterSpace) { return run(from: afterSpace, isOther) - start }
        }

        let spaceEnd = run(from: start, isSpace)
        guard spaceEnd > start else { return 1 }
        if self == .llama3 {
            // \s*[\r\n]+ : up to the last newline of the whitespace run.
            if let lastNewline = (start..<spaceEnd).last(where: isNewline) { return lastNewline + 1 - start }
        }
        // \s+(?!\S) : the whole run at the end of the text, else all but its last character.
        if spaceEnd == count { return spaceEnd - start }
        if spaceEnd - start >= 2 { return spaceEnd - 1 - start }
        // \s+
        return spaceEnd - start
    }
}

extension Unicode.Scalar {
    /// `\p{L}`: the letter general categories.
    var isLetter: Bool {
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }

    /// `\p{N}`: the number general categories.
    var isNumber: Bool {
        switch properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }
}
