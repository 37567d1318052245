extension SafetensorsFile {
  /// Converts stored floating-point elements to `Float` (F64 is rounded to nearest).
  ///
  /// - Parameters:
  ///   - bytes: `count × dtype.byteCount` little-endian bytes, any alignment.
  ///   - dtype: The stored element type.
  ///   - count: The number of elements.
  /// - Returns: `count` values in storage order.
  package static func decodeFloats(
    _ bytes: UnsafeRawBufferPointer, dtype: SafetensorsDType, count: Int
  ) -> [Float] {
    precondition(bytes.count == count * dtype.byteCount, "byte count does not match element count")
    guard count > 0 else { return [] }
    return [Float](unsafeUninitializedCapacity: count) { output, initialized in
      switch dtype {
      case .f32:
        #if _endian(little)
          UnsafeMutableRawBufferPointer(output).copyMemory(from: bytes)
        #else
          for index in 0..<count {
            let bits = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self))
            output[index] = Float(bitPattern: bits)
          }
        #endif
      case .f16:
        for index in 0..<count {
          let bits = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self))
          output[index] = floatFromHalf(bits)
        }
      case .bf16:
        for index in 0..<count {
          let bits = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self))
          output[index] = floatFromBFloat16(bits)
        }
      case .f64:
        for index in 0..<count {
          let bits = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self))
          output[index] = Float(Double(bitPattern: bits))
        }
      default:
        preconditionFailure("\(dtype.rawValue) does not convert to Float; callers check convertsToFloat")
      }
      initialized = count
    }
  }

  /// Converts an IEEE 754 half-precision bit pattern to `Float` exactly.
  ///
  /// Normal numbers re-bias the exponent (15 → 127); subnormals are `mantissa × 2⁻²⁴`; infinities
  /// and NaNs keep their sign and payload.
  package static func floatFromHalf(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = UInt32(bits >> 10) & 0x1F
    let mantissa = UInt32(bits & 0x03FF)
    switch exponent {
    case 0:
      let magnitude = Float(mantissa) * 0x1p-24
      return sign == 0 ? magnitude : -magnitude
    case 0x1F:
      return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    default:
      return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
  }

  /// Converts a bfloat16 bit pattern to `Float`: the pattern is the upper half of the `Float`.
  package static func floatFromBFloat16(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
  }
}
