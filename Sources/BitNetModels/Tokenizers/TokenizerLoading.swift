import BitNetFormats
import Foundation

extension BPETokenizer {
    /// Loads a Hugging Face `tokenizer.json` (BPE model; byte-level or SentencePiece-style).
    ///
    /// `configuration` supplies bos/eos ids when the file's own special tokens do not say.
    public static func load(tokenizerJSON path: String, bos: Int? = nil, eos: [Int] = []) throws -> BPETokenizer {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(.invalidModel, "\(path): cannot read the tokenizer")
        }
        return try load(tokenizerJSON: data, path: path, bos: bos, eos: eos)
    }

    /// Loads `tokenizer.json` text held in memory; `path` names it in errors.
    public static func load(tokenizerJSON data: Data, path: String, bos: Int? = nil, eos: [Int] = []) throws -> BPETokenizer {
        let spec: JSONValue
        do { spec = try JSONValue.parse(data) } catch {
            throw ModelError(.invalidModel, "\(path): \(error)")
        }
        func fail(_ message: String) -> ModelError { ModelError(.unsupportedModel, "\(path): \(message)") }
        guard let model = spec["model"], model["type"]?.stringValue == "BPE", let vocabulary = model["vocab"]?.objectValue else {
            throw fail("only BPE tokenizers are supported")
        }
        var added: [(id: Int, content: String)] = []
        for entry in spec["added_tokens"]?.arrayValue ?? [] {
            guard let content = entry["content"]?.stringValue, let id = entry["id"]?.intValue else { continue }
            guard id >= 0 else { throw fail("added token '\(content)' has the invalid id \(id)") }
            added.append((id, content))
        }
        // Ids index the table: the largest may not exceed what the file lists (no table sized by one number).
        let largest = max(vocabulary.compactMap { $0.1.intValue }.max() ?? -1, added.map(\.id).max() ?? -1)
        guard largest < vocabulary.count + added.count else {
            throw fail("token id \(largest) is larger than the \(vocabulary.count + added.count) tokens the file lists")
        }
        var tokens = [String](repeating: "", count: largest + 1)
        var assigned = [Bool](repeating: false, count: largest + 1)
        for (token, id) in vocabulary {
            guard let id = id.intValue, id >= 0 else { throw fail("invalid id for '\(token)'") }
            guard !assigned[id] else { throw fail("id \(id) is given to both '\(tokens[id])' and '\(token)'") }
            tokens[id] = token
            assigned[id] = true
        }
        for entry in added { tokens[entry.id] = entry.content }
        let special = added.map(\.id)

        var ranks: [String: Int] = [:]
        for (rank, merge) in (model["merges"]?.arrayValue ?? []).enumerated() {
            let key: String
            if let pair = merge.arrayValue, pair.count == 2, let left = pair[0].stringValue, let right = pair[1].stringValue {
                key = left + " " + right
            } else if let text = merge.stringValue {
                key = text
            } else {
                throw fail("merge \(rank) is not a pair")
            }
            if ranks[key] == nil { ranks[key] = rank }
        }

        // The pre-tokenizer decides the flavour: ByteLevel (with or without a Split regex) or none (SentencePiece).
        var kind = BPETokenizer.Kind.sentencePiece
        var pattern: PreTokenizerPattern?
        func visit(_ node: JSONValue?) throws {
            guard let node, node != .null else { return }
            switch node["type"]?.stringValue {
            case "Sequence": for child in node["pretokenizers"]?.arrayValue ?? [] { try visit(child) }
            case "ByteLevel":
                kind = .byteLevel
                if node["use_regex"] == .bool(true) { pattern = pattern ?? .gpt2 }
                if node["add_prefix_space"] == .bool(true) { throw fail("ByteLevel add_prefix_space is not supported") }
            case "Split":
                guard let regex = node["pattern"]?["Regex"]?.stringValue, let known = PreTokenizerPattern(regex: regex) else {
                    throw fail("unsupported Split pattern (LLaMA-3's and GPT-2's are supported)")
                }
                pattern = known
            default: throw fail("unsupported pre-tokenizer \(node["type"]?.stringValue ?? "?")")
            }
        }
        try visit(spec["pre_tokenizer"])
        if kind == .sentencePiece, spec["normalizer"] == nil || spec["normalizer"] == .null {
            throw fail("a BPE tokenizer without ByteLevel needs SentencePiece's normalizer (Prepend ▁, Replace ' ' → ▁)")
        }
        let unknown = model["unk_token"]?.stringValue.flatMap { name in tokens.firstIndex(of: name) }
        let bosID = bos ?? ["<|begin_of_text|>", "<s>"].lazy.compactMap { tokens.firstIndex(of: $0) }.first
        var eosIDs = Set(eos)
        for name in ["<|end_of_text|>", "<|eot_id|>", "</s>", "<|im_end|>"] {
            if let id = tokens.firstIndex(of: name) { eosIDs.insert(id) }
        }
        return try BPETokenizer(
            source: path, kind: kind, tokens: tokens, priority: .ranks(ranks), preTokenizer: pattern, special: special,
            ignoreMerges: model["ignore_merges"] == .bool(true), byteFallback: model["byte_fallback"] == .bool(true),
            unknown: unknown, beginningOfSequence: bosID, endOfGeneration: eosIDs, addsBeginningOfSequence: bosID != nil)
    }

    /// Loads the tokenizer stored in GGUF metadata (`tokenizer.ggml.*`): model `gpt2` (byte-level BPE
    /// with merges; `pre` chooses the regex) or `llama` (SentencePiece BPE with scores).
    public static func load(gguf file: GGUFFile) throws -> BPETokenizer {
        let metadata = file.metadata
        func fail(_ message: String) -> ModelError { ModelError(.unsupportedModel, "\(file.path): \(message)") }
        guard let model = metadata.string("tokenizer.ggml.model") else { throw fail("no tokenizer.ggml.model (the file has no tokenizer)") }
        guard let tokens = metadata.array("tokenizer.ggml.tokens")?.strings else { throw fail("no tokenizer.ggml.tokens") }
        let types = metadata.array("tokenizer.ggml.token_type")?.integers ?? []
        guard types.isEmpty || types.count == tokens.count else {
            throw fail("tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens")
        }
        // Control (3) and user-defined (4) tokens are matched in the text before BPE.
        let special = types.enumerated().filter { $0.element == 3 || $0.element == 4 }.map(\.offset)
        let bos = metadata.int("tokenizer.ggml.bos_token_id")
        var endOfGeneration = Set([metadata.int("tokenizer.ggml.eos_token_id"), metadata.int("tokenizer.ggml.eot_token_id")].compactMap { $0 })
        for name in ["<|eot_id|>", "<|end_of_text|>", "</s>"] {
            if let id = tokens.firstIndex(of: name), special.contains(id) { endOfGeneration.insert(id) }
        }
        switch model {
        case "gpt2":
            guard let merges = metadata.array("tokenizer.ggml.merges")?.strings else { throw fail("a gpt2 tokenizer needs tokenizer.ggml.merges") }
            let pre = metadata.string("tokenizer.ggml.pre") ?? "default"
            let pattern: PreTokenizerPattern
            switch pre {
            case "llama-bpe", "llama3", "llama-v3", "falcon3", "dbrx", "smaug-bpe": pattern = .llama3
            case "default", "gpt2", "gpt-2": pattern = .gpt2
            default: throw fail("tokenizer.ggml.pre '\(pre)' is not supported (llama-bpe and gpt2 are)")
            }
            var ranks: [String: Int] = [:]
            for (rank, merge) in merges.enumerated() where ranks[merge] == nil { ranks[merge] = rank }
            return try BPETokenizer(
                source: file.path, kind: .byteLevel, tokens: tokens, priority: .ranks(ranks), preTokenizer: pattern, special: special,
                ignoreMerges: pattern == .llama3, byteFallback: false, unknown: nil, beginningOfSequence: bos,
                endOfGeneration: endOfGeneration, addsBeginningOfSequence: metadata.bool("tokenizer.ggml.add_bos_token") ?? true)
        case "llama":
            guard let scores = metadata.array("tokenizer.ggml.scores")?.floats, scores.count == tokens.count else {
                throw fail("a llama tokenizer needs one tokenizer.ggml.scores entry per token")
            }
            return try BPETokenizer(
                source: file.path, kind: .sentencePiece, tokens: tokens, priority: .scores(scores), preTokenizer: nil, special: special,
                ignoreMerges: false, byteFallback: true, unknown: metadata.int("tokenizer.ggml.unknown_token_id"),
                beginningOfSequence: bos, endOfGeneration: endOfGeneration,
                addsBeginningOfSequence: metadata.bool("tokenizer.ggml.add_bos_token") ?? true)
        default:
            throw fail("tokenizer model '\(model)' is not supported (gpt2 and llama are)")
        }
    }
}

extension BPETokenizer {
    /// The tokenizer as GGUF `tokenizer.ggml.*` metadata, the way llama.cpp's converters store it:
    /// `gpt2` (tokens, token types, merges, `pre`) for byte-level BPE, `llama` (tokens, scores, token types)
    /// for SentencePiece-style BPE, whose scores are minus the rank of the merge that makes each token.
    public func ggufMetadata(chatTemplate: String? = nil) -> [(key: String, value: GGUFValue)] {
        var entries: [(key: String, value: GGUFValue)] = []
        let byteTokens = Set(self.byteTokens ?? [])
        // llama.cpp token types: 1 normal, 2 unknown, 3 control, 6 byte.
        let types: [Int32] = tokens.indices.map { id in
            if id == unknown { return 2 }
            if specialIDs.contains(id) && !(kind == .sentencePiece && byteTokens.contains(id)) { return 3 }
            if byteTokens.contains(id) { return 6 }
            return 1
        }
        let ordered: [String]
        switch priority {
        case .ranks(let ranks): ordered = ranks.sorted { $0.value < $1.value }.map(\.key)
        case .scores: ordered = []
        }
        switch kind {
        case .byteLevel:
            entries.append(("tokenizer.ggml.model", .string("gpt2")))
            entries.append(("tokenizer.ggml.pre", .string(preTokenizer == .gpt2 ? "gpt2" : "llama-bpe")))
            entries.append(("tokenizer.ggml.tokens", .array(.string(tokens))))
            entries.append(("tokenizer.ggml.token_type", .array(.int32(types))))
            entries.append(("tokenizer.ggml.merges", .array(.string(ordered))))
        case .sentencePiece:
            let scores: [Float]
            switch priority {
            case .scores(let existing): scores = existing
            case .ranks(let ranks):
                var byToken: [String: Int] = [:]
                for (merge, rank) in ranks {
                    let token = merge.replacingOccurrences(of: " ", with: "")
                    byToken[token] = min(byToken[token] ?? .max, rank)
                }
                scores = tokens.map { token in byToken[token].map { -Float($0) - 1 } ?? 0 }
            }
            entries.append(("tokenizer.ggml.model", .string("llama")))
            entries.append(("tokenizer.ggml.tokens", .array(.string(tokens))))
            entries.append(("tokenizer.ggml.scores", .array(.float32(scores))))
            entries.append(("tokenizer.ggml.token_type", .array(.int32(types))))
            if let unknown { entries.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(unknown)))) }
        }
        if let beginningOfSequence { entries.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(beginningOfSequence)))) }
        if let end = endOfGeneration.filter({ tokens[$0] != "<|eot_id|>" }).min() ?? endOfGeneration.min() {
            entries.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(end))))
        }
        if let eot = tokens.firstIndex(of: "<|eot_id|>") { entries.append(("tokenizer.ggml.eot_token_id", .uint32(UInt32(eot)))) }
        entries.append(("tokenizer.ggml.add_bos_token", .bool(addsBeginningOfSequence)))
        if let chatTemplate { entries.append(("tokenizer.chat_template", .string(chatTemplate))) }
        return entries
    }
}
