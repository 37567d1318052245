import Foundation
import TestSupport
import XCTest

/// `curvalid serve` options, run as a user would: help, configuration layering, usage errors.
final class ServeCommandTests: XCTestCase {
  private var directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
    "cv-unset-\(UUID().uuidString)")

  override func setUpWithError() throws {
    directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
      "cv-serve-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(at: directory)
  }

  private func write(_ name: String, _ text: String) throws -> String {
    let url = directory.appendingPathComponent(name)
    try Data(text.utf8).write(to: url)
    return url.path
  }

  private func effective(_ arguments: [String], environment: [String: String] = [:]) throws -> [String: Any] {
    let result = try BinaryRunner.run(["serve", "--check-config"] + arguments, environment: environment)
    XCTAssertEqual(result.status, 0, result.standardError)
    return try XCTUnwrap(JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
  }

  func testHelpListsTheOptions() throws {
    let result = try BinaryRunner.run(["serve", "--help"])
    XCTAssertEqual(result.status, 0)
    for option in [
      "--listen HOST:PORT", "--unix PATH", "--model BUNDLE", "--audit DB", "--config FILE",
      "--admin-token-file FILE",
      "--check-config", "--overload POLICY", "--workers N", "--threads N", "--store-prompts",
      "--audit-mode MODE", "--threshold T", "--trusted-roles LIST",
    ] {
      XCTAssertTrue(result.output.contains(option), option)
    }
  }

  func testDefaultsAreLoopbackAndSafe() throws {
    let config = try effective([], environment: ["CURVALID_THREADS": "", "CURVALID_LISTEN": ""])
    XCTAssertEqual(config["listen"] as? [String], ["127.0.0.1:7433"])
    XCTAssertEqual(config["max_line_bytes"] as? Int, 1_048_576)
    XCTAssertEqual(config["overload"] as? String, "fail_closed")
    XCTAssertEqual(config["audit_mode"] as? String, "durable")
    XCTAssertEqual(config["store_prompts"] as? Bool, false)
    XCTAssertEqual(config["workers"] as? Int, 1)
    XCTAssertEqual(config["admin_token_configured"] as? Bool, false)
    XCTAssertEqual(config["trusted_roles"] as? [String], ["assistant", "developer", "system"])
  }

  /// The shipped example config holds only known keys with valid values (its admin token file is a
  /// path on the production host, left out here).
  func testExampleConfigIsValid() throws {
    let example = Fixtures.directory.deletingLastPathComponent().appendingPathComponent(
      "server/curvalid.conf.example")
    var settings = try XCTUnwrap(
      JSONSerialization.jsonObject(with: Data(contentsOf: example)) as? [String: Any])
    settings["admin_token_file"] = nil
    let copy = try write(
      "example.json", String(decoding: JSONSerialization.data(withJSONObject: settings), as: UTF8.self))
    let config = try effective(["--config", copy])
    XCTAssertEqual(config["trusted_roles"] as? [String], ["assistant", "developer", "system"])
    XCTAssertEqual(config["max_prompt_chars"] as? Int, 32_768)
  }

  func testTrustedRolesFromFileEnvironmentAndFlag() throws {
    let none = try write("none.json", #"{"trusted_roles": []}"#)
    XCTAssertEqual(try effective(["--config", none])["trusted_roles"] as? [String], [])
    let one = try write("one.json", #"{"trusted_roles": "System"}"#)
    XCTAssertEqual(try effective(["--config", one])["trusted_roles"] as? [String], ["system"])
    XCTAssertEqual(
      try effective(["--config", one], environment: ["CURVALID_TRUSTED_ROLES": "system, developer"])[
        "trusted_roles"] as? [String], ["developer", "system"])
    XCTAssertEqual(try effective(["--trusted-roles", "none"])["trusted_roles"] as? [String], [])
    XCTAssertEqual(try effective(["--trusted-roles", ""])["trusted_roles"] as? [String], [])
  }

  func testConfigFileThenEnvironmentThenFlags() throws {
    let token = try write("token", "0123456789abcdef-token\n")
    let auditKey = try write("audit.key", "0123456789abcdef-audit-key\n")
    try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: auditKey)
    let file = try write(
      "curvalid.json",
      """
      {"listen": ["127.0.0.1:9000", "[::1]:9001"], "unix_socket": "/tmp/cv.sock", "workers": 2,
       "threads": 1, "overload": "fail_open", "max_connections": 10, "idle_timeout_s": 30,
       "store_prompts": true, "admin_token_file": "\(token)", "audit": "/var/lib/curvalid/audit.db",
       "audit_key_file": "\(auditKey)"}
      """)
    let fromFile = try effective(["--config", file])
    XCTAssertEqual(fromFile["listen"] as? [String], ["127.0.0.1:9000", "[::1]:9001"])
    XCTAssertEqual(fromFile["unix_socket"] as? String, "/tmp/cv.sock")
    XCTAssertEqual(fromFile["workers"] as? Int, 2)
    XCTAssertEqual(fromFile["threads"] as? Int, 1)
    XCTAssertEqual(fromFile["overload"] as? String, "fail_open")
    XCTAssertEqual(fromFile["max_connections"] as? Int, 10)
    XCTAssertEqual(fromFile["idle_timeout_s"] as? Double, 30)
    XCTAssertEqual(fromFile["store_prompts"] as? Bool, true)
    XCTAssertEqual(fromFile["admin_token_configured"] as? Bool, true)
    XCTAssertEqual(fromFile["audit_key_file"] as? String, auditKey)
    XCTAssertFalse(String(describing: fromFile).contains("audit-key\n"), "the key itself is never shown")
    XCTAssertFalse(String(describing: fromFile).contains("0123456789abcdef-token"))

    let layered = try effective(
      ["--config", file, "--listen", "127.0.0.1:9100", "--workers", "1", "--audit-mode", "async"],
      environment: [
        "CURVALID_LISTEN": "127.0.0.1:9200", "CURVALID_MAX_CONNECTIONS": "20", "CURVALID_WORKERS": "3",
      ])
    XCTAssertEqual(layered["listen"] as? [String], ["127.0.0.1:9100"])
    XCTAssertEqual(layered["max_connections"] as? Int, 20)
    XCTAssertEqual(layered["workers"] as? Int, 1)
    XCTAssertEqual(layered["audit_mode"] as? String, "async")
    XCTAssertEqual(layered["config_file"] as? String, file)

    XCTAssertTrue(fromFile["threshold"] is NSNull)
    let thresholdFile = try write("threshold.json", #"{"threshold": 0.5}"#)
    XCTAssertEqual(try effective(["--config", thresholdFile])["threshold"] as? Double, 0.5)
    XCTAssertEqual(
      try effective(["--config", thresholdFile], environment: ["CURVALID_THRESHOLD": "0.25"])["threshold"]
        as? Double, 0.25)
    XCTAssertEqual(
      try effective(
        ["--config", thresholdFile, "--threshold", "0.125"], environment: ["CURVALID_THRESHOLD": "0.25"])[
          "threshold"] as? Double, 0.125)

    let noTCP = try effective(["--listen", "none", "--unix", directory.appendingPathComponent("s").path])
    XCTAssertEqual(noTCP["listen"] as? [String], [])
  }

  func testBadOptionsAndConfigurationsExit64() throws {
    let unknownKey = try write("typo.json", #"{"listne": "127.0.0.1:1"}"#)
    let wrongType = try write("type.json", #"{"workers": "two"}"#)
    let shortToken = try write("short", "short\n")
    let badThreshold = try write("threshold.json", #"{"threshold": -1}"#)
    // A long enough audit key that group and others may read (written with the default mode).
    let sharedKey = try write("shared.key", "0123456789abcdef-audit-key\n")
    try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: sharedKey)
    for arguments in [
      ["serve", "--bogus"], ["serve", "extra"], ["serve", "--listen", "7433"],
      ["serve", "--listen", "host:99999"],
      ["serve", "--workers", "0"], ["serve", "--overload", "sometimes"], ["serve", "--audit-mode", "later"],
      ["serve", "--idle-timeout", "0"], ["serve", "--config", unknownKey, "--check-config"],
      ["serve", "--config", wrongType, "--check-config"], ["serve", "--listen", "none", "--check-config"],
      ["serve", "--admin-token-file", shortToken, "--check-config"],
      ["serve", "--audit-key-file", sharedKey, "--check-config"],
      ["serve", "--threshold", "2", "--check-config"], ["serve", "--config", badThreshold, "--check-config"],
    ] {
      let result = try BinaryRunner.run(arguments)
      XCTAssertEqual(result.status, 64, "\(arguments): \(result.standardError)")
      XCTAssertTrue(result.standardError.hasPrefix("curvalid: "), result.standardError)
    }
    let missing = try BinaryRunner.run([
      "serve", "--config", directory.appendingPathComponent("nope.json").path,
    ])
    XCTAssertEqual(missing.status, 1)
  }
}
