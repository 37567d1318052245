import Foundation
import TestSupport
import XCTest

/// `curvalid bench encoder` prints well-formed measurements (values are not asserted: speed is
/// measured in benchmarks, not tests).
final class BenchCommandTests: XCTestCase {
  func testJSONRowsHaveEveryFieldForEveryLengthAndThreadSetting() throws {
    let result = try BinaryRunner.run([
      "bench", "encoder", "--encoder", Fixtures.url("encoder/tiny-bert").path, "--lengths", "8,40",
      "--runs", "20", "--batch", "3", "--json",
    ])
    XCTAssertEqual(result.status, 0, result.standardError)
    let rows = try result.output.split(separator: "\n").map {
      try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
    XCTAssertEqual(rows.count, 4)
    XCTAssertEqual(rows.compactMap { $0["threads"] as? Int }, [1, 1, 2, 2])
    XCTAssertEqual(rows.compactMap { $0["tokens"] as? Int }, [8, 40, 8, 40])
    for row in rows {
      for field in ["median_ms", "min_ms", "max_ms", "gflops", "batch_ms_per_prompt", "batch_prompts_per_s"] {
        let value = try XCTUnwrap(row[field] as? Double, field)
        XCTAssertGreaterThan(value, 0, field)
      }
      XCTAssertLessThanOrEqual(row["min_ms"] as? Double ?? 0, row["median_ms"] as? Double ?? 0)
      XCTAssertLessThanOrEqual(row["median_ms"] as? Double ?? 0, row["max_ms"] as? Double ?? 0)
    }
  }

  func testTableNamesTheThreadSettingAndRejectsBadArguments() throws {
    let table = try BinaryRunner.run([
      "bench", "encoder", "--encoder", Fixtures.url("encoder/tiny-bert").path, "--lengths", "8",
      "--runs", "20", "--batch", "2", "--threads", "1",
    ])
    XCTAssertEqual(table.status, 0, table.standardError)
    XCTAssertTrue(table.output.contains("BLAS threads: 1"))
    XCTAssertFalse(table.output.contains("BLAS threads: 2"))
    for bad in [
      ["bench", "decoder"], ["bench", "encoder", "--runs", "5"], ["bench", "encoder", "--lengths", "1,x"],
    ] {
      XCTAssertEqual(try BinaryRunner.run(bad).status, 64, "\(bad)")
    }
    XCTAssertEqual(try BinaryRunner.run(["bench"]).status, 64)
  }
}
