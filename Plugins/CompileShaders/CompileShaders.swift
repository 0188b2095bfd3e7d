import Foundation
import PackagePlugin

/// Compiles the GLSL compute shaders of `Shaders/` to SPIR-V with `glslangValidator` (glslang-tools) during the
/// build and embeds each one in the target as a generated Swift source (`ShaderCode.<name>`, base64), so SPIR-V
/// is never committed and cannot drift from its GLSL.
///
/// A shader compiled more than once says so in its own text: a line `// variant: <name> <glslang flags>`.
@main
struct CompileShaders: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let shaders = context.package.directoryURL.appending(path: "Shaders")
        let files = try FileManager.default.contentsOfDirectory(at: shaders, includingPropertiesForKeys: nil)
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let includes = files.filter { $0.pathExtension == "glsl" }
        let compiler = try glslangValidator()
        var commands: [Command] = []
        for shader in files where shader.pathExtension == "comp" {
            let name = shader.deletingPathExtension().lastPathComponent.split(separator: "_").enumerated()
                .map { $0.offset == 0 ? String($0.element) : $0.element.capitalized }.joined()
            var variants = [(name, [String]())]
            for line in try String(contentsOf: shader, encoding: .utf8).split(separator: "\n") where line.hasPrefix("// variant: ") {
                let words = line.dropFirst("// variant: ".count).split(separator: " ").map(String.init)
                if let first = words.first { variants.append((first, Array(words.dropFirst()))) }
            }
            for (variant, flags) in variants {
                let output = context.pluginWorkDirectoryURL.appending(path: "ShaderCode+\(variant).swift")
                // sh: $0 compiler, $1 shader, $2 output, $3 variant name, then the flags.
                let script = """
                    set -e; compiler="$0"; shader="$1"; output="$2"; variant="$3"; shift 4
                    "$compiler" -V --target-env vulkan1.2 "$@" -o "$output.spv" "$shader" > "$output.log" || { cat "$output.log" >&2; exit 1; }
                    { printf '// Generated from %s by the CompileShaders plugin.\\nextension ShaderCode {\\n    static let %s = "' "$(basename "$shader")" "$variant"
                      base64 -w0 "$output.spv"; printf '"\\n}\\n'; } > "$output"
                    """
                commands.append(.buildCommand(
                    displayName: "Compiling \(shader.lastPathComponent) (\(variant)) to SPIR-V",
                    executable: URL(filePath: "/bin/sh"),
                    arguments: ["-c", script, compiler.path, shader.path, output.path, variant, "--"] + flags,
                    inputFiles: [shader] + includes,
                    outputFiles: [output]))
            }
        }
        return commands
    }

    /// glslangValidator from PATH (`context.tool(named:)` does not search PATH on Linux).
    private func glslangValidator() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"] {
            let candidate = URL(filePath: directory).appending(path: "glslangValidator")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw CompileShadersError(message: "glslangValidator is not on PATH: install glslang-tools (scripts/bootstrap does)")
    }
}

struct CompileShadersError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
