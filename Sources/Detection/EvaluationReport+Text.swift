import Foundation

extension EvaluationReport {
  /// The report as aligned plain-text tables: overall, attack families, benign families, sources,
  /// and the optional leave-one-family-out, length-matched and comparison sections.
  ///
  /// Rates print as percentages with one decimal (`42.1%`), AUCs and scores with three decimals,
  /// missing values as `-`. The output ends with a newline.
  public func renderText() -> String {
    var out = "model \(modelID)  threshold \(Self.decimal(threshold, 4))"
    if let target = targetFalsePositiveRate { out += "  target FPR \(Self.percent(target))" }
    out += "\n\nOverall\n"
    out += TextTable(
      header: ["examples", "attacks", "benign", "accuracy", "precision", "recall", "F1", "FPR", "ROC-AUC"],
      rows: [
        [
          "\(overall.count)", "\(overall.positives)", "\(overall.negatives)", Self.percent(overall.accuracy),
          // Without attacks, recall and F1 are undefined; without rejections, precision is.
          Self.percent(overall.truePositives + overall.falsePositives > 0 ? overall.precision : nil),
          Self.percent(overall.positives > 0 ? overall.recall : nil),
          Self.percent(overall.positives > 0 ? overall.f1 : nil),
          Self.percent(overall.falsePositiveRate), Self.decimal(overall.rocAUC),
        ]
      ],
      leftAligned: 0
    ).rendered()
    out +=
      "TP \(overall.truePositives)  FP \(overall.falsePositives)  "
      + "TN \(overall.trueNegatives)  FN \(overall.falseNegatives)\n"
    out += "macro TPR over \(attackFamilies.count) attack families: \(Self.percent(macroTPR)) at threshold"
    if let target = targetFalsePositiveRate, let recalibrated = macroTPRAtTargetFPR {
      out +=
        ", \(Self.percent(recalibrated)) at \(Self.percent(target)) FPR recalibrated on these benign examples"
    }
    out += "\n"
    if !attackFamilies.isEmpty {
      out += "\nAttack families\n"
      out += TextTable(
        header: ["family", "n", "TPR", "mean score", "AUC vs benign"],
        rows: attackFamilies.map {
          [
            $0.name, "\($0.count)", Self.percent($0.truePositiveRate), Self.decimal($0.meanScore),
            Self.decimal($0.rocAUC),
          ]
        }
      ).rendered()
    }
    if !benignFamilies.isEmpty {
      out += "\nBenign families\n"
      out += TextTable(
        header: ["family", "n", "FPR", "mean score"],
        rows: benignFamilies.map {
          [$0.name, "\($0.count)", Self.percent($0.falsePositiveRate), Self.decimal($0.meanScore)]
        }
      ).rendered()
    }
    if !sources.isEmpty {
      out += "\nSources\n"
      out += TextTable(
        header: ["source", "n", "attacks", "benign", "TPR", "FPR", "mean score", "AUC vs benign"],
        rows: sources.map {
          [
            $0.name, "\($0.count)", "\($0.attacks)", "\($0.benign)", Self.percent($0.truePositiveRate),
            Self.percent($0.falsePositiveRate), Self.decimal($0.meanScore), Self.decimal($0.rocAUC),
          ]
        }
      ).rendered()
    }
    if let lofo = leaveOneFamilyOut {
      out += "\nLeave-one-family-out\n"
      out += Self.renderLeaveOneFamilyOut(lofo)
    }
    if let matched = lengthMatched {
      out += "\nLength-matched (\(matched.bins.count) log-spaced token bins, seed \(matched.seed))\n"
      out += Self.renderLengthMatched(matched)
    }
    if let comparison, !comparison.isEmpty {
      out += "\nComparison\n"
      out += Self.renderComparison(comparison)
    }
    return out
  }

  /// The leave-one-family-out table and its macro line.
  public static func renderLeaveOneFamilyOut(_ summary: LeaveOneFamilyOutSummary) -> String {
    var out = TextTable(
      header: ["held-out family", "n", "benign", "threshold", "TPR", "AUC", "benign FPR"],
      rows: summary.rows.map {
        [
          $0.family, "\($0.count)", "\($0.benign)", decimal($0.threshold, 4), percent($0.truePositiveRate),
          decimal($0.rocAUC), percent($0.benignFalsePositiveRate),
        ]
      }
    ).rendered()
    out +=
      "macro TPR \(percent(summary.macroTPR))  macro AUC \(decimal(summary.macroAUC))  "
      + "pooled benign FPR \(percent(summary.pooledBenignFalsePositiveRate))\n"
    return out
  }

  /// The length-matched bins table and the subset's metrics.
  public static func renderLengthMatched(_ summary: LengthMatchedSummary) -> String {
    var out = TextTable(
      header: ["tokens from", "to", "attacks", "benign", "pairs kept"],
      rows: summary.bins.map {
        [
          decimal($0.lowerTokens, 0), decimal($0.upperTokens, 0), "\($0.attacks)", "\($0.benign)",
          "\($0.pairs)",
        ]
      }
    ).rendered()
    let metrics = summary.overall
    out += TextTable(
      header: ["examples", "accuracy", "TPR", "FPR", "ROC-AUC", "macro TPR"],
      rows: [
        [
          "\(metrics.count)", percent(metrics.accuracy), percent(metrics.recall),
          percent(metrics.falsePositiveRate), decimal(metrics.rocAUC), percent(summary.macroTPR),
        ]
      ],
      leftAligned: 0
    ).rendered()
    return out
  }

  /// Several models side by side.
  public static func renderComparison(_ rows: [ModelComparisonRow]) -> String {
    TextTable(
      header: ["model", "basis", "macro TPR", "AUC", "benign FPR", "length-matched AUC"],
      rows: rows.map {
        [
          $0.model, $0.basis.rawValue, percent($0.macroTPR), decimal($0.rocAUC),
          percent($0.benignFalsePositiveRate), decimal($0.lengthMatchedAUC),
        ]
      },
      leftAligned: 2
    ).rendered()
  }

  /// A rate as a percentage with one decimal, `-` when absent.
  static func percent(_ rate: Double?) -> String {
    guard let rate, rate.isFinite else { return "-" }
    return String(format: "%.1f%%", rate * 100)
  }

  /// A number with `digits` decimals, `-` when absent.
  static func decimal(_ value: Double?, _ digits: Int = 3) -> String {
    guard let value, value.isFinite else { return "-" }
    return String(format: "%.\(digits)f", value)
  }

  /// A number with `digits` decimals.
  static func decimal(_ value: Float, _ digits: Int) -> String {
    decimal(Double(value), digits)
  }
}

/// A plain-text table: the first `leftAligned` columns (names) left-aligned, the others (numbers)
/// right-aligned, two spaces apart.
private struct TextTable {
  /// Column titles.
  var header: [String]
  /// Cells, row by row (each row as long as `header`).
  var rows: [[String]]
  /// How many leading columns hold names.
  var leftAligned = 1

  /// The table with a dashed rule under the header, each line ending in a newline.
  func rendered() -> String {
    let columns = header.count
    var widths = header.map(\.count)
    for row in rows {
      for (column, cell) in row.prefix(columns).enumerated() {
        widths[column] = max(widths[column], cell.count)
      }
    }
    func line(_ cells: [String]) -> String {
      var parts: [String] = []
      for column in 0..<columns {
        let cell = column < cells.count ? cells[column] : ""
        let padding = String(repeating: " ", count: widths[column] - cell.count)
        parts.append(column < leftAligned ? cell + padding : padding + cell)
      }
      var text = parts.joined(separator: "  ")
      while text.last == " " { text.removeLast() }
      return text + "\n"
    }
    var out = line(header)
    out += line(widths.map { String(repeating: "-", count: $0) })
    for row in rows { out += line(row) }
    return out
  }
}
