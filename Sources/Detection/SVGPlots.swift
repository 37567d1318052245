import Foundation

/// Hand-written SVG figures for `curvalid evaluate --plots DIR`: the ROC curve with the operating
/// point, and per-family distributions of the score and of each named feature.
///
/// Output is deterministic (groups sorted by name, fixed number formatting, no randomness), valid
/// XML (labels escaped, characters XML 1.0 forbids dropped) and self-contained.
public enum SVGPlots {
  /// The reference model's feature names, in its feature order.
  public static let referenceFeatures = ["prompt_lid", "curvature_conv1", "curvature_conv2"]

  /// Colour of attack examples.
  static let attackColor = "#d62728"
  /// Colour of benign examples.
  static let benignColor = "#1f77b4"
  /// Most points drawn per group in a strip (evenly spaced in sorted order).
  static let maximumStripPoints = 200

  // MARK: ROC

  /// The ROC curve of `examples` in two panels (linear and logarithmic false-positive axis), with
  /// the operating point at `threshold` marked and the AUC in the title.
  ///
  /// - Parameters:
  ///   - examples: Scored examples with both classes.
  ///   - threshold: The model's threshold (reject when `score ≥ threshold`), marked on the curve.
  ///   - modelID: Shown in the title.
  ///   - targetFalsePositiveRate: Drawn as a guide on the logarithmic panel; `nil` for none.
  /// - Returns: The SVG document, or `nil` when a class is absent.
  public static func rocCurve(
    _ examples: [ScoredExample], threshold: Float?, modelID: String, targetFalsePositiveRate: Double? = 0.01
  ) -> String? {
    guard let curve = ROCCurve(examples) else { return nil }
    var operatingPoint: (fpr: Double, tpr: Double)?
    if let threshold,
      let tpr = Metrics.truePositiveRate(examples, threshold: threshold),
      let fpr = Metrics.falsePositiveRate(examples, threshold: threshold)
    {
      operatingPoint = (fpr, tpr)
    }
    let title =
      "ROC, model \(modelID), AUC \(format(curve.auc, 3)) (\(curve.positives) attacks, \(curve.negatives) benign)"
    return rocCurve(
      curve, operatingPoint: operatingPoint, threshold: threshold, title: title,
      targetFalsePositiveRate: targetFalsePositiveRate)
  }

  /// Draws a ROC curve.
  ///
  /// - Parameters:
  ///   - curve: The curve.
  ///   - operatingPoint: The (false-positive rate, true-positive rate) to mark, if any.
  ///   - threshold: The operating point's threshold, for its label.
  ///   - title: The figure's title.
  ///   - targetFalsePositiveRate: Drawn as a guide on the logarithmic panel; `nil` for none.
  /// - Returns: The SVG document.
  public static func rocCurve(
    _ curve: ROCCurve, operatingPoint: (fpr: Double, tpr: Double)?, threshold: Float?, title: String,
    targetFalsePositiveRate: Double? = 0.01
  ) -> String {
    let side = 380.0
    let margin = (left: 70.0, top: 60.0, gap: 90.0, bottom: 70.0)
    let width = margin.left + side + margin.gap + side + 30
    let height = margin.top + side + margin.bottom
    var svg = SVGDocument(width: width, height: height, title: title)
    svg.text(title, x: width / 2, y: 28, anchor: "middle", size: 15, weight: "bold")

    let minimumLogFPR = 1e-3
    let panels: [(name: String, originX: Double, map: (Double) -> Double, ticks: [(Double, String)])] = [
      (
        "linear", margin.left, { $0 },
        stride(from: 0.0, through: 1.0, by: 0.2).map { ($0, percent($0, digits: 0)) }
      ),
      (
        "log", margin.left + side + margin.gap,
        { (log10(max($0, minimumLogFPR)) - log10(minimumLogFPR)) / -log10(minimumLogFPR) },
        [(0.001, "0.1%"), (0.01, "1%"), (0.1, "10%"), (1, "100%")]
      ),
    ]
    for panel in panels {
      let x0 = panel.originX
      let y0 = margin.top
      func px(_ fpr: Double) -> Double { x0 + panel.map(fpr) * side }
      func py(_ tpr: Double) -> Double { y0 + (1 - tpr) * side }
      svg.element(
        "rect",
        ["x": x0, "y": y0, "width": side, "height": side].mapValues { format($0) }
          .merging(["fill": "none", "stroke": "#444"]) { $1 })
      for (value, label) in panel.ticks {
        svg.line(x1: px(value), y1: y0 + side, x2: px(value), y2: y0 + side + 5, stroke: "#444")
        svg.line(x1: px(value), y1: y0, x2: px(value), y2: y0 + side, stroke: "#eee")
        svg.text(label, x: px(value), y: y0 + side + 20, anchor: "middle")
      }
      for value in stride(from: 0.0, through: 1.0, by: 0.2) {
        svg.line(x1: x0 - 5, y1: py(value), x2: x0, y2: py(value), stroke: "#444")
        svg.text(percent(value, digits: 0), x: x0 - 8, y: py(value) + 4, anchor: "end")
      }
      svg.text(
        panel.name == "log" ? "false-positive rate (log scale)" : "false-positive rate", x: x0 + side / 2,
        y: y0 + side + 45, anchor: "middle")
      svg.text(
        "true-positive rate", x: x0 - 50, y: y0 + side / 2, anchor: "middle",
        transform: "rotate(-90 \(format(x0 - 50)) \(format(y0 + side / 2)))")
      if panel.name == "linear" {
        svg.line(x1: px(0), y1: py(0), x2: px(1), y2: py(1), stroke: "#bbb", dash: "4 4")
      } else if let target = targetFalsePositiveRate, target > 0, target <= 1 {
        svg.line(x1: px(target), y1: y0, x2: px(target), y2: y0 + side, stroke: "#888", dash: "4 4")
        svg.text("target \(percent(target))", x: px(target) + 4, y: y0 + 14, size: 11, fill: "#555")
      }
      // Consecutive points on the same pixel add nothing to the picture.
      var coordinates: [String] = []
      var previous = ""
      for point in curve.points {
        let pair = "\(format(px(point.falsePositiveRate))),\(format(py(point.truePositiveRate)))"
        if pair != previous { coordinates.append(pair) }
        previous = pair
      }
      svg.element(
        "polyline",
        [
          "points": coordinates.joined(separator: " "), "fill": "none", "stroke": attackColor,
          "stroke-width": "2",
        ])
      if let point = operatingPoint {
        let idSuffix = panel.name == "log" ? "-log" : ""
        svg.element(
          "circle",
          [
            "id": "operating-point\(idSuffix)", "class": "operating-point", "cx": format(px(point.fpr)),
            "cy": format(py(point.tpr)), "r": "5", "fill": "black",
          ])
        var label = "TPR \(percent(point.tpr)) at FPR \(percent(point.fpr))"
        if let threshold { label = "threshold \(format(Double(threshold), 3)): " + label }
        // The label sits on the side of the point with more room.
        let onRight = px(point.fpr) < x0 + side / 2
        svg.text(
          label, x: px(point.fpr) + (onRight ? 8 : -8), y: min(py(point.tpr) + 18, y0 + side - 6),
          anchor: onRight ? "start" : "end", size: 11)
      }
    }
    return svg.rendered()
  }

  // MARK: Distributions

  /// Per-family box-and-strip plots of the score, attacks in red and benign families in blue,
  /// with the threshold as a vertical line.
  ///
  /// - Parameters:
  ///   - examples: Scored examples.
  ///   - threshold: The model's threshold, drawn if given.
  ///   - modelID: Shown in the title.
  /// - Returns: The SVG document (an empty chart when there are no examples).
  public static func scoreDistributions(_ examples: [ScoredExample], threshold: Float?, modelID: String)
    -> String
  {
    distributions(
      groups(examples) { $0.score.isFinite ? Double($0.score) : nil }, marker: threshold.map(Double.init),
      markerLabel: threshold.map { "threshold \(format(Double($0), 3))" },
      title: "Score by family, model \(modelID)", axisLabel: "score (probability of attack)")
  }

  /// Per-family box-and-strip plots of one named feature.
  ///
  /// - Parameters:
  ///   - examples: Scored examples; those without the feature (or with a non-finite value) are skipped.
  ///   - feature: The feature's name, e.g. `prompt_lid`.
  ///   - modelID: Shown in the title.
  /// - Returns: The SVG document, or `nil` when no example has a finite value of the feature.
  public static func featureDistributions(_ examples: [ScoredExample], feature: String, modelID: String)
    -> String?
  {
    let grouped = groups(examples) { example in
      example.features[feature].flatMap { $0.isFinite ? Double($0) : nil }
    }
    guard grouped.contains(where: { !$0.values.isEmpty }) else { return nil }
    return distributions(
      grouped, marker: nil, markerLabel: nil, title: "\(feature) by family, model \(modelID)",
      axisLabel: feature)
  }

  /// Writes every figure into `directory` (created if needed): `roc.svg` (when both classes are
  /// present), `score_by_family.svg`, and `feature_<name>.svg` per feature.
  ///
  /// - Parameters:
  ///   - examples: Scored examples.
  ///   - threshold: The model's threshold.
  ///   - modelID: Shown in titles.
  ///   - features: Feature names to plot; `nil` plots every feature any example has, sorted
  ///     (for the reference model: `prompt_lid`, `curvature_conv1`, `curvature_conv2`).
  ///   - directory: The output directory.
  /// - Returns: The files written, in the order above.
  /// - Throws: `DetectionError.io` when the directory or a file cannot be written.
  @discardableResult
  public static func writeAll(
    _ examples: [ScoredExample], threshold: Float, modelID: String, features: [String]? = nil,
    to directory: URL
  ) throws -> [URL] {
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
      throw DetectionError(
        .io, "cannot create plot directory \(directory.path): \(error.localizedDescription)")
    }
    var documents: [(String, String)] = []
    if let roc = rocCurve(examples, threshold: threshold, modelID: modelID) {
      documents.append(("roc.svg", roc))
    }
    documents.append(
      ("score_by_family.svg", scoreDistributions(examples, threshold: threshold, modelID: modelID)))
    let names = features ?? Set(examples.flatMap(\.features.keys)).sorted()
    for name in names {
      if let plot = featureDistributions(examples, feature: name, modelID: modelID) {
        documents.append(("feature_\(fileSafe(name)).svg", plot))
      }
    }
    var written: [URL] = []
    for (fileName, text) in documents {
      let url = directory.appendingPathComponent(fileName)
      do {
        try Data(text.utf8).write(to: url, options: .atomic)
      } catch {
        throw DetectionError(.io, "cannot write \(url.path): \(error.localizedDescription)")
      }
      written.append(url)
    }
    return written
  }

  /// One row of a distribution plot.
  struct Group {
    var name: String
    var isAttack: Bool
    var values: [Double]
  }

  /// Attack families first, then benign families, each sorted by name, with their values sorted.
  static func groups(_ examples: [ScoredExample], value: (ScoredExample) -> Double?) -> [Group] {
    var attack: [String: [Double]] = [:]
    var benign: [String: [Double]] = [:]
    for example in examples {
      let v = value(example)
      if example.isAttack {
        attack[example.family, default: []] += v.map { [$0] } ?? []
      } else {
        benign[example.family, default: []] += v.map { [$0] } ?? []
      }
    }
    let attackGroups = attack.keys.sorted().map {
      Group(name: $0, isAttack: true, values: (attack[$0] ?? []).sorted())
    }
    let benignGroups = benign.keys.sorted().map {
      Group(name: $0, isAttack: false, values: (benign[$0] ?? []).sorted())
    }
    return attackGroups + benignGroups
  }

  /// Horizontal box plots (quartiles, median, whiskers to the extremes) over a strip of points.
  ///
  /// The axis spans the 0.5th to 99.5th percentile of all values (so a few outliers do not squash
  /// the rest); values outside are drawn at the edge.
  static func distributions(
    _ groups: [Group], marker: Double?, markerLabel: String?, title: String, axisLabel: String
  ) -> String {
    let rowHeight = 30.0
    let labelWidth = 230.0
    let plotWidth = 600.0
    let top = 60.0
    let width = labelWidth + plotWidth + 40
    let plotHeight = max(1, Double(groups.count)) * rowHeight
    let height = top + plotHeight + 90
    var svg = SVGDocument(width: width, height: height, title: title)
    svg.text(title, x: width / 2, y: 28, anchor: "middle", size: 15, weight: "bold")

    let all = groups.flatMap(\.values).sorted()
    var low = quantile(all, 0.005) ?? 0
    var high = quantile(all, 0.995) ?? 1
    if let marker, marker.isFinite {
      low = min(low, marker)
      high = max(high, marker)
    }
    if let first = all.first, let last = all.last, first >= 0, last <= 1, low >= 0, high <= 1 {
      (low, high) = (0, 1)  // Probabilities: the natural axis.
    }
    if high <= low {
      (low, high) = (low - 0.5, high + 0.5)
    }
    let x0 = labelWidth
    func px(_ value: Double) -> Double { x0 + (min(max(value, low), high) - low) / (high - low) * plotWidth }

    svg.element(
      "rect",
      [
        "x": format(x0), "y": format(top), "width": format(plotWidth), "height": format(plotHeight),
        "fill": "none",
        "stroke": "#444",
      ])
    for tick in ticks(low: low, high: high) {
      svg.line(x1: px(tick.value), y1: top, x2: px(tick.value), y2: top + plotHeight, stroke: "#eee")
      svg.line(
        x1: px(tick.value), y1: top + plotHeight, x2: px(tick.value), y2: top + plotHeight + 5, stroke: "#444"
      )
      svg.text(tick.label, x: px(tick.value), y: top + plotHeight + 20, anchor: "middle")
    }
    svg.text(axisLabel, x: x0 + plotWidth / 2, y: top + plotHeight + 42, anchor: "middle")

    for (row, group) in groups.enumerated() {
      let center = top + (Double(row) + 0.5) * rowHeight
      let color = group.isAttack ? attackColor : benignColor
      let name = group.name.count > 32 ? String(group.name.prefix(31)) + "…" : group.name
      svg.text("\(name) (\(group.values.count))", x: x0 - 8, y: center + 4, anchor: "end", fill: color)
      let values = group.values
      guard let minimum = values.first, let maximum = values.last,
        let q1 = quantile(values, 0.25), let median = quantile(values, 0.5), let q3 = quantile(values, 0.75)
      else { continue }
      // Strip: evenly spaced samples of the sorted values.
      let step = max(1, (values.count + maximumStripPoints - 1) / maximumStripPoints)
      var dots = ""
      for index in stride(from: 0, to: values.count, by: step) {
        // A fixed pseudo-random offset in ±0.3 row heights (SplitMix64's finalizer of the index).
        var hash = (UInt64(index) &+ 1) &* 0x9E37_79B9_7F4A_7C15
        hash = (hash ^ (hash >> 30)) &* 0xBF58_476D_1CE4_E5B9
        hash = (hash ^ (hash >> 27)) &* 0x94D0_49BB_1331_11EB
        hash ^= hash >> 31
        let jitter = (Double(hash >> 53) / 2048 - 0.5) * rowHeight * 0.6
        dots += "M\(format(px(values[index]))) \(format(center + jitter))h0"
      }
      svg.element(
        "path",
        [
          "d": dots, "stroke": color, "stroke-opacity": "0.35", "stroke-width": "4",
          "stroke-linecap": "round",
        ])
      svg.line(x1: px(minimum), y1: center, x2: px(maximum), y2: center, stroke: color)
      svg.element(
        "rect",
        [
          "x": format(px(q1)), "y": format(center - rowHeight * 0.3),
          "width": format(max(1, px(q3) - px(q1))),
          "height": format(rowHeight * 0.6), "fill": color, "fill-opacity": "0.2", "stroke": color,
        ])
      svg.line(
        x1: px(median), y1: center - rowHeight * 0.3, x2: px(median), y2: center + rowHeight * 0.3,
        stroke: color,
        width: 2.5)
    }
    if let marker, marker.isFinite {
      svg.element(
        "line",
        [
          "id": "threshold", "x1": format(px(marker)), "y1": format(top - 6), "x2": format(px(marker)),
          "y2": format(top + plotHeight), "stroke": "black", "stroke-dasharray": "5 3",
        ])
      if let markerLabel { svg.text(markerLabel, x: px(marker), y: top - 10, anchor: "middle", size: 11) }
    }
    // Legend.
    let legendY = top + plotHeight + 68
    svg.element(
      "rect",
      ["x": format(x0), "y": format(legendY - 10), "width": "12", "height": "12", "fill": attackColor])
    svg.text("attack family", x: x0 + 18, y: legendY)
    svg.element(
      "rect",
      ["x": format(x0 + 130), "y": format(legendY - 10), "width": "12", "height": "12", "fill": benignColor])
    svg.text("benign family", x: x0 + 148, y: legendY)
    svg.text(
      "box: quartiles and median; line: min to max; dots: values", x: x0 + 270, y: legendY, size: 11,
      fill: "#555")
    return svg.rendered()
  }

  /// Linear-interpolated quantile of sorted values; `nil` when empty.
  static func quantile(_ sorted: [Double], _ q: Double) -> Double? {
    guard !sorted.isEmpty else { return nil }
    let position = q * Double(sorted.count - 1)
    let lower = Int(position.rounded(.down))
    let upper = min(sorted.count - 1, lower + 1)
    let fraction = position - Double(lower)
    return sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
  }

  /// About five "nice" ticks (steps of 1, 2 or 5 × 10ᵏ) within `low…high`.
  static func ticks(low: Double, high: Double) -> [(value: Double, label: String)] {
    let raw = (high - low) / 5
    guard raw > 0, raw.isFinite else { return [] }
    let magnitude = pow(10, (log10(raw)).rounded(.down))
    let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
    let digits = max(0, Int(-log10(step).rounded(.down)))
    var result: [(Double, String)] = []
    var value = (low / step).rounded(.up) * step
    while value <= high + step * 1e-9 {
      result.append((value, String(format: "%.\(digits)f", value == 0 ? 0 : value)))
      value += step
    }
    return result
  }

  /// A number with `digits` decimals (fixed C locale formatting).
  static func format(_ value: Double, _ digits: Int = 1) -> String {
    guard value.isFinite else { return "0" }
    let text = String(format: "%.\(digits)f", value)
    return text == "-0.0" || text == "-0" ? String(text.dropFirst()) : text
  }

  /// A rate as a percentage.
  static func percent(_ rate: Double, digits: Int = 1) -> String {
    format(rate * 100, digits) + "%"
  }

  /// A file-name-safe version of a feature name.
  static func fileSafe(_ name: String) -> String {
    let mapped = name.unicodeScalars.map { scalar -> Character in
      let ok =
        scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || scalar == "_" || scalar == "-")
      return ok ? Character(scalar) : "_"
    }
    return mapped.isEmpty ? "unnamed" : String(mapped)
  }

  /// Escapes text for XML character data and attribute values, dropping characters XML 1.0 forbids.
  public static func escapeXML(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for scalar in text.unicodeScalars {
      switch scalar {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&apos;"
      case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
      default:
        let v = scalar.value
        let allowed = (v >= 0x20 && v <= 0xD7FF) || (v >= 0xE000 && v <= 0xFFFD) || v >= 0x10000
        if allowed { out.unicodeScalars.append(scalar) }
      }
    }
    return out
  }
}

/// A minimal SVG writer: elements with escaped, sorted attributes.
private struct SVGDocument {
  let width: Double
  let height: Double
  let title: String
  private var body = ""

  init(width: Double, height: Double, title: String) {
    self.width = width
    self.height = height
    self.title = title
  }

  /// Appends an empty element; attributes are written in name order for deterministic output.
  mutating func element(_ name: String, _ attributes: [String: String]) {
    body += "<\(name)"
    for key in attributes.keys.sorted() {
      body += " \(key)=\"\(SVGPlots.escapeXML(attributes[key] ?? ""))\""
    }
    body += "/>\n"
  }

  mutating func line(
    x1: Double, y1: Double, x2: Double, y2: Double, stroke: String, width: Double = 1, dash: String? = nil
  ) {
    var attributes = [
      "x1": SVGPlots.format(x1), "y1": SVGPlots.format(y1), "x2": SVGPlots.format(x2),
      "y2": SVGPlots.format(y2),
      "stroke": stroke, "stroke-width": SVGPlots.format(width),
    ]
    if let dash { attributes["stroke-dasharray"] = dash }
    element("line", attributes)
  }

  mutating func text(
    _ content: String, x: Double, y: Double, anchor: String = "start", size: Double = 12,
    weight: String? = nil,
    fill: String = "#222", transform: String? = nil
  ) {
    var attributes = [
      "x": SVGPlots.format(x), "y": SVGPlots.format(y), "text-anchor": anchor,
      "font-size": SVGPlots.format(size, 0),
      "fill": fill,
    ]
    if let weight { attributes["font-weight"] = weight }
    if let transform { attributes["transform"] = transform }
    body += "<text"
    for key in attributes.keys.sorted() {
      body += " \(key)=\"\(SVGPlots.escapeXML(attributes[key] ?? ""))\""
    }
    body += ">\(SVGPlots.escapeXML(content))</text>\n"
  }

  func rendered() -> String {
    let w = SVGPlots.format(width, 0)
    let h = SVGPlots.format(height, 0)
    return """
      <?xml version="1.0" encoding="UTF-8"?>
      <svg xmlns="http://www.w3.org/2000/svg" width="\(w)" height="\(h)" viewBox="0 0 \(w) \(h)" \
      font-family="Helvetica, Arial, sans-serif">
      <title>\(SVGPlots.escapeXML(title))</title>
      <rect x="0" y="0" width="\(w)" height="\(h)" fill="white"/>
      \(body)</svg>

      """
  }
}
