import Foundation

/// The SPIR-V of `Shaders/*.comp`, compiled during the build by the CompileShaders plugin, which adds one
/// static base64 string per shader (and per variant) to this namespace.
enum ShaderCode {
    /// The words of a shader's SPIR-V.
    static func words(_ base64: String) -> [UInt32] {
        guard let data = Data(base64Encoded: base64), data.count % 4 == 0 else { preconditionFailure("a shader's embedded SPIR-V is damaged") }
        return data.withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)) }
    }
}
