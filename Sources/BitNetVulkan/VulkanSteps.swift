import BitNetModels

/// What a pass records: the graph's ops in order, with the runs that end in a quantization fused into one
/// dispatch where the buffers between the fused ops are read by nothing else (as ggml-vulkan fuses RMSNorm and
/// its multiply), and RoPE folded into the attention op after it. Per BitNet block that turns 22 dispatches into
/// 13: the residual add, the next norm and the quantization of its output are one, as are the gated activation,
/// the sub-norm and the quantization; the keys are rotated as they are stored and the queries as they are read.
/// Chained, each quantization runs in the last workgroup of the BitLinear or attention dispatches before it where a
/// pass takes their row shaders, BitLinear ops of one input are one dispatch (Q, K, V; gate, up), and a decode step's
/// attention stores the keys itself: 5 dispatches a block.
enum VulkanStep {
    case op(ForwardOp)
    case rowQuantize(RowQuantizeStep)
    /// RoPE of the queries and keys and then the attention op that reads them: the keys rotated as they are stored,
    /// the queries as attention reads them, so no RoPE dispatch runs.
    case ropedAttention(AttentionOp, RotaryEmbedding)
    /// BitLinear ops or an attention op and the row-quantize step after them, the quantization run by their
    /// dispatches' last workgroup where a pass takes the row shaders.
    case chainedQuantize(ChainedQuantizeStep)
    /// Two or three BitLinear ops of one input (Q, K and V), one dispatch where a pass takes the row shader.
    case bitLinears([BitLinearOp])

    /// The steps for `graph`; every quantization becomes a ``RowQuantizeStep``, fused with the ops before it
    /// where `fusing` allows, and chained to the BitLinear ops before that where `chaining` does too.
    static func plan(_ graph: ForwardGraph, fusing: Bool = true, chaining: Bool = true) -> [VulkanStep] {
        var steps: [VulkanStep] = []
        var index = 0
        while index < graph.ops.count {
            if fusing, let (step, count) = RowQuantizeStep.fused(graph, at: index) {
                steps.append(.rowQuantize(step))
                index += count
                continue
            }
            if fusing, let (attention, rotary) = ropedAttention(graph, at: index) {
                steps.append(.ropedAttention(attention, rotary))
                index += 3
                continue
            }
            if case .quantize(let input, let output, _, _) = graph.ops[index] {
                steps.append(.rowQuantize(RowQuantizeStep(input: input, prologue: .none, norm: nil, output: output)))
            } else {
                steps.append(.op(graph.ops[index]))
            }
            index += 1
        }
        return fusing ? grouped(chaining ? chained(steps, graph) : steps) : steps
    }

    /// `steps` with each run of two or three BitLinear ops of one input made one step.
    private static func grouped(_ steps: [VulkanStep]) -> [VulkanStep] {
        var result: [VulkanStep] = []
        for step in steps {
            if let op = BitLinearOp(step) {
                switch result.last {
                case let last? where BitLinearOp(last)?.input == op.input:
                    result[result.count - 1] = .bitLinears([BitLinearOp(last)!, op])
                    continue
                case .bitLinears(let group) where group.count < 3 && group[0].input == op.input:
                    result[result.count - 1] = .bitLinears(group + [op])
                    continue
                default: break
                }
            }
            result.append(step)
        }
        return result
    }

    /// `steps` with each row-quantize step and the run of BitLinear ops right before it made one chained step, where
    /// the step reads every one of their outputs (as its row or its second input, two different buffers) and all
    /// are rows of tokens; or the attention step right before it, where the step reads its output alone.
    private static func chained(_ steps: [VulkanStep], _ graph: ForwardGraph) -> [VulkanStep] {
        var result: [VulkanStep] = []
        var chains = 0
        for step in steps {
            guard case .rowQuantize(let quantize) = step else {
                result.append(step)
                continue
            }
            let attention: (AttentionOp, RotaryEmbedding?)? = switch result.last {
            case .op(.attention(let op)): (op, nil)
            case .ropedAttention(let op, let rotary): (op, rotary)
            default: nil
            }
            if let (op, rotary) = attention, quantize.prologue == .none, quantize.input == op.output, graph[op.output].rows == .tokens {
                result[result.count - 1] = .chainedQuantize(ChainedQuantizeStep(producer: .attention(op, rotary), quantize: quantize, counter: chains))
                chains += 1
                continue
            }
            var bitLinears: [BitLinearOp] = []
            while let last = result.last.flatMap(BitLinearOp.init) {
                bitLinears.insert(last, at: 0)
                result.removeLast()
            }
            let read = [quantize.input] + (quantize.second.map { [$0] } ?? []), outputs = bitLinears.map(\.output)
            let tokenRows = (read + outputs).allSatisfy { graph[$0].rows == .tokens }
            if !bitLinears.isEmpty, bitLinears.count <= 3, Set(bitLinears.map(\.input)).count == 1, tokenRows, Set(read).count == read.count,
               Set(outputs).count == outputs.count, Set(outputs).isSubset(of: read) {
                result.append(.chainedQuantize(ChainedQuantizeStep(producer: .bitLinears(bitLinears), quantize: quantize, counter: chains)))
                chains += 1
            } else {
                result += bitLinears.map { .op($0.forwardOp) } + [step]
            }
        }
        return result
    }

    /// RoPE of an attention op's queries and keys (in either order, one rotary embedding over whole heads) right
    /// before it, when nothing after the attention reads the rotated vectors.
    private static func ropedAttention(_ graph: ForwardGraph, at index: Int) -> (AttentionOp, RotaryEmbedding)? {
        guard index + 2 < graph.ops.count, case .rope(let first, let firstHeads, let rotary) = graph.ops[index],
              case .rope(let second, let secondHeads, let secondRotary) = graph.ops[index + 1], rotary == secondRotary,
              case .attention(let attention) = graph.ops[index + 2], rotary.dimension == attention.headDimension else { return nil }
        let rotated: Set<[Int]> = [[first.index, firstHeads], [second.index, secondHeads]]
        guard rotated == [[attention.query.index, attention.heads], [attention.key.index, attention.keyValueHeads]],
              graph.isDead(attention.query, after: index + 2), graph.isDead(attention.key, after: index + 2) else { return nil }
        return (attention, rotary)
    }
}

/// One row of int8 codes per token (the row-quantize shader): a prologue, then optionally an RMSNorm, then
/// BitNet's per-row absmax quantization, with the floats of the ops it stands for.
struct RowQuantizeStep: Hashable {
    /// What the shader computes from its inputs before anything else.
    enum Prologue: Hashable {
        /// The row of ``RowQuantizeStep/input`` as it is.
        case none
        /// The residual add `input += addend`, written back; the row is the sum.
        case residual(addend: ActivationID)
        /// `f(input) · up` (the gated activation), never written.
        case gated(GatedActivation, up: ActivationID)
    }

    struct Norm: Hashable {
        var weight: WeightID
        var epsilon: Float
    }

    var input: ActivationID
    var prologue: Prologue
    var norm: Norm?
    var output: ActivationID

    /// The buffer the prologue reads beside ``input``: the residual's addend or the gated activation's `up`.
    var second: ActivationID? {
        switch prologue {
        case .none: nil
        case .residual(let addend): addend
        case .gated(_, let up): up
        }
    }

    /// What a profile calls it: "add + norm + quantize", "activation + norm + quantize", "quantize", ….
    var label: String {
        let first: String? = switch prologue {
        case .none: nil
        case .residual: "add"
        case .gated: "activation"
        }
        return ([first, norm == nil ? nil : "norm"].compactMap { $0 } + ["quantize"]).joined(separator: " + ")
    }

    /// The shader's prologue code: 0 none, 1 residual, 2–4 the gated activations (elementwise.comp's 1–3).
    var prologueCode: UInt32 {
        switch prologue {
        case .none: 0
        case .residual: 1
        case .gated(.squaredReLU, _): 2
        case .gated(.silu, _): 3
        case .gated(.gelu, _): 4
        }
    }

    /// The step for ops `index…` when at least two of them fuse: an optional residual add or gated activation,
    /// an optional RMSNorm of its result, then a quantization of what came before it; each intermediate buffer
    /// (the norm's output, the gated activation's) read by nothing after. Returns the step and the ops it covers.
    static func fused(_ graph: ForwardGraph, at index: Int) -> (RowQuantizeStep, Int)? {
        let ops = graph.ops
        var next = index
        var prologue = Prologue.none
        var input: ActivationID?, row: ActivationID?
        switch ops[index] {
        case .add(let addend, let accumulator):
            (prologue, input, row) = (.residual(addend: addend), accumulator, accumulator)
            next += 1
        case .gatedActivation(let activation, let gate, let up, let output):
            (prologue, input, row) = (.gated(activation, up: up), gate, output)
            next += 1
        default: break
        }
        var norm: Norm?
        if next < ops.count, case .rmsNorm(let x, let weight, let epsilon, let output) = ops[next], row == nil || row == x {
            if case .gated = prologue, !graph.isDead(x, after: next) { return nil }
            if row == nil { input = x }
            norm = Norm(weight: weight, epsilon: epsilon)
            row = output
            next += 1
        }
        guard next > index, next < ops.count, case .quantize(let x, let output, _, _) = ops[next], x == row, let input else { return nil }
        var written = false  // the quantized row is in memory afterwards: a residual sum with no norm after it
        if case .residual = prologue, norm == nil { written = true }
        if !written, !graph.isDead(x, after: next) { return nil }
        return (RowQuantizeStep(input: input, prologue: prologue, norm: norm, output: output), next - index + 1)
    }
}

/// The ops that write a row and the row-quantize step after them that reads it: BitLinear ops whose outputs it reads
/// as its row or its second input (the O and down projections before the residual add, gate and up before the gated
/// activation), or attention, whose output it normalizes and quantizes. Where a pass takes the row shaders
/// (BitLinear under ``VulkanBackend/tiledMinimumTokens`` tokens or with tiles off, attention not tiled), their CHAINED
/// variants run the quantization in the last workgroup of their dispatches to finish (chain.glsl), so a decode step has
/// neither a barrier nor a dispatch between them; the floats are those of the steps recorded apart.
struct ChainedQuantizeStep: Hashable {
    enum Producer: Hashable {
        /// Recorded as one dispatch (at most three: bitlinear.comp's matrices).
        case bitLinears([BitLinearOp])
        /// The attention op, and its rotary embedding where the RoPE before it was folded in.
        case attention(AttentionOp, RotaryEmbedding?)
    }

    var producer: Producer
    var quantize: RowQuantizeStep
    /// Which of the cache's runs of counters its dispatches count their workgroups in (``VulkanKeyValueStorage/chainCounters``).
    var counter: Int

    /// The BitLinear ops it chains, if that is what it chains.
    var bitLinears: [BitLinearOp] {
        if case .bitLinears(let bitLinears) = producer { bitLinears } else { [] }
    }
}

/// A BitLinear op: `output = weight · input`, with int8 `input` codes.
struct BitLinearOp: Hashable {
    var input: ActivationID
    var weight: WeightID
    var output: ActivationID

    var forwardOp: ForwardOp { .bitLinear(input: input, weight: weight, output: output) }

    /// The op a step records alone, if it is a BitLinear.
    init?(_ step: VulkanStep) {
        guard case .op(.bitLinear(let input, let weight, let output)) = step else { return nil }
        (self.input, self.weight, self.output) = (input, weight, output)
    }

    init(input: ActivationID, weight: WeightID, output: ActivationID) {
        (self.input, self.weight, self.output) = (input, weight, output)
    }
}
