import Foundation

/// The tensors of a Hugging Face checkpoint: one `.safetensors` file, or shards listed by
/// `model.safetensors.index.json`. Every tensor is a view into its shard's memory map.
public final class SafetensorsCheckpoint: Sendable {
    /// The shards, in file-name order.
    public let files: [SafetensorsFile]
    private let location: [String: (file: Int, tensor: Int)]
    /// Tensor names in shard order, then header order.
    public let tensorNames: [String]

    /// Opens `directory`'s weights: the index (sharded) if present, else `model.safetensors`.
    public convenience init(directory: String) throws {
        let index = directory + "/model.safetensors.index.json"
        if FileManager.default.fileExists(atPath: index) {
            try self.init(indexPath: index)
        } else {
            let single = directory + "/model.safetensors"
            guard FileManager.default.fileExists(atPath: single) else {
                throw FormatError(.missingFile, file: directory, "no model.safetensors or model.safetensors.index.json")
            }
            try self.init(files: [SafetensorsFile(path: single)])
        }
    }

    /// Opens the shards named by a `model.safetensors.index.json`, checking that every tensor the
    /// index lists is in the shard it names.
    public convenience init(indexPath: String) throws {
        let directory = (indexPath as NSString).deletingLastPathComponent
        guard let data = FileManager.default.contents(atPath: indexPath) else {
            throw FormatError(.cannotOpen, file: indexPath, "cannot read the shard index")
        }
        let weightMap = try Self.parseIndex(data, path: indexPath)
        let shardNames = Set(weightMap.map(\.shard)).sorted()
        var files: [SafetensorsFile] = []
        for name in shardNames {
            let path = directory.isEmpty ? name : directory + "/" + name
            guard FileManager.default.fileExists(atPath: path) else {
                throw FormatError(.missingFile, file: indexPath, "shard '\(name)' listed in the index is missing")
            }
            files.append(try SafetensorsFile(path: path))
        }
        try self.init(files: files)
        for (tensor, shard) in weightMap {
            guard let found = location[tensor], (files[found.file].path as NSString).lastPathComponent == shard else {
                throw FormatError(.missingTensor, file: indexPath, "tensor '\(tensor)' is not in shard '\(shard)' as the index says")
            }
        }
    }

    /// The `weight_map` of a `model.safetensors.index.json`: which shard holds each tensor. Shard names
    /// must be plain file names in the same directory.
    public static func parseIndex(_ data: Data, path: String) throws -> [(tensor: String, shard: String)] {
        let index = try attributing(to: path) { try JSONValue.parse(data) }
        guard let weightMap = index["weight_map"]?.objectValue else {
            throw FormatError(.invalidHeader, file: path, "no weight_map object")
        }
        return try weightMap.map { tensor, shard in
            guard let name = shard.stringValue, !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
                throw FormatError(.invalidHeader, file: path, "tensor '\(tensor)' maps to an invalid shard name")
            }
            return (tensor, name)
        }
    }

    /// Combines already-open files; a tensor name may appear in only one of them.
    public init(files: [SafetensorsFile]) throws {
        self.files = files
        var location: [String: (file: Int, tensor: Int)] = [:]
        var names: [String] = []
        for (fileIndex, file) in files.enumerated() {
            for (tensorIndex, tensor) in file.tensors.enumerated() {
                if location[tensor.name] != nil {
                    throw FormatError(.duplicateTensor, file: file.path, "tensor '\(tensor.name)' also appears in another shard")
                }
                location[tensor.name] = (fileIndex, tensorIndex)
                names.append(tensor.name)
            }
        }
        self.location = location
        tensorNames = names
    }

    public func tensor(named name: String) -> SafetensorsTensorInfo? {
        location[name].map { files[$0.file].tensors[$0.tensor] }
    }

    /// The shard holding `name`.
    public func file(containing name: String) -> SafetensorsFile? {
        location[name].map { files[$0.file] }
    }

    /// Calls `body` with the bytes of tensor `name`; throws if the checkpoint has no such tensor.
    public func withTensorData<R>(named name: String, _ body: (SafetensorsTensorInfo, UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let place = location[name] else {
            throw FormatError(.missingTensor, file: files.first?.path, "no tensor named '\(name)' in the checkpoint")
        }
        let file = files[place.file]
        let tensor = file.tensors[place.tensor]
        return try file.withTensorData(tensor) { try body(tensor, $0) }
    }
}
