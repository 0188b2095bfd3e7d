// Using swift-bitnet as a library: open a GGUF file or a Hugging Face checkpoint, list its tensors, and
// decode one ternary weight. Run: swift run InspectModel Tests/Fixtures/gguf/gguf-py-written.gguf
import BitNetFormats
import BitNetQuantization
import Foundation

let arguments = CommandLine.arguments
guard arguments.count == 2 else {
    print("usage: InspectModel PATH (.gguf, .safetensors or a Hugging Face directory)")
    exit(2)
}

do {
    let inspection = try ModelInspection(path: arguments[1])
    print("\(inspection.summary): \(inspection.tensors.count) tensors")
    if inspection.format == .gguf {
        let file = try GGUFFile(path: arguments[1])
        print("architecture:", file.metadata.string("general.architecture") ?? "unknown")
        // The first ternary weight, decoded in place from the memory map.
        if let weight = file.tensors.first(where: { $0.type == .tq2_0 || $0.type == .tq1_0 || $0.type == .i2_s }) {
            let columns = weight.shape[0], rows = weight.elementCount / columns
            let packing: any TernaryPacking.Type = switch weight.type {
            case .tq2_0: TQ2_0.self
            case .tq1_0: TQ1_0.self
            default: I2S.self
            }
            let tensor = try file.withTensorData(weight) { try packing.unpackTensor($0, rows: rows, columns: columns) }
            let counts = Dictionary(grouping: tensor.codes, by: { $0 }).mapValues(\.count)
            print("\(weight.name) (\(weight.type)): scale \(tensor.scale), codes -1/0/+1 = \(counts[-1] ?? 0)/\(counts[0] ?? 0)/\(counts[1] ?? 0)")
        }
    }
} catch {
    print("error: \(error)")
    exit(1)
}
