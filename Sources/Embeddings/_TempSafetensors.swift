import Foundation
// TEMPORARY: replaced by the validated reader.
public struct EmbeddingsError: Error, CustomStringConvertible, Sendable {
  public enum Code: String, Sendable { case fileNotFound, unreadable, invalidHeader, invalidTensor, unsupportedDType, missingTensor, shapeMismatch, invalidConfiguration, invalidInput }
  public let code: Code
  public let message: String
  public init(_ code: Code, _ message: String) { self.code = code; self.message = message }
  public var description: String { message }
}
public final class SafetensorsFile: @unchecked Sendable {
  let data: Data
  let header: [String: Any]
  public init(contentsOf url: URL) throws {
    data = try Data(contentsOf: url)
    let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
    header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
  }
  public struct Info { public let shape: [Int] }
  public func info(_ name: String) -> Info? {
    guard let e = header[name] as? [String: Any] else { return nil }
    return Info(shape: e["shape"] as! [Int])
  }
  public func floats(_ name: String, shape: [Int]) throws -> [Float] {
    guard let e = header[name] as? [String: Any] else { throw EmbeddingsError(.missingTensor, name) }
    guard (e["shape"] as! [Int]) == shape else { throw EmbeddingsError(.shapeMismatch, name) }
    let off = e["data_offsets"] as! [Int]
    let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
    let sub = data.subdata(in: (8 + n + off[0])..<(8 + n + off[1]))
    return sub.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
  }
  public func floats(_ name: String) throws -> [Float] { try floats(name, shape: info(name)!.shape) }
}
