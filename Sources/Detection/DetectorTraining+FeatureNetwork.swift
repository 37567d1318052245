import Foundation
import LinearAlgebra
import NeuralNetwork

extension DetectorTraining {
  /// Trains the benign feature network (DESIGN §1) to predict the topic of benign prompts.
  ///
  /// Token standardization statistics come from the training split only (first `L` rows of each
  /// prompt, the rows the network reads). Topics are benign families, or k-means clusters of the
  /// mean-pooled benign training embeddings (see `DetectorConfiguration.FeatureNetwork.topics`).
  static func trainFeatureNetwork(
    corpus: Corpus, benignTrain: [Int], benignValidation: [Int], allTrain: [Int],
    configuration: DetectorConfiguration, hiddenSize d: Int,
    load: (ArraySlice<Int>) throws(DetectionError) -> [PromptEmbedding], random: inout NetworkRandom,
    progress: ProgressReporter?
  ) throws(DetectionError) -> (model: FeatureNetworkModel, centroids: Matrix?) {
    let settings = configuration.featureNetwork
    let length = settings.length
    // Statistics and mean-pooled benign rows in one pass.
    var sum = [Double](repeating: 0, count: d)
    var squares = [Double](repeating: 0, count: d)
    var rowCount = 0
    let benignSet = Set(benignTrain)
    var pooled: [Int: [Float]] = [:]
    progress?.begin("token statistics", total: allTrain.count)
    var start = 0
    while start < allTrain.count {
      let end = min(start + chunkSize, allTrain.count)
      let chunk = allTrain[start..<end]
      for (index, embedding) in zip(chunk, try load(chunk)) {
        let rows = min(embedding.hidden.rows, length)
        for row in 0..<rows {
          for c in 0..<d {
            let value = Double(embedding.hidden.storage[row * d + c])
            sum[c] += value
            squares[c] += value * value
          }
        }
        rowCount += rows
        if benignSet.contains(index) { pooled[index] = meanRow(embedding.hidden) }
      }
      start = end
      progress?.update(start)
    }
    progress?.finish()
    let count = Double(max(rowCount, 1))
    let mean = sum.map { Float($0 / count) }
    let deviation = zip(squares, sum).map { square, total in
      max(Float(max(square / count - (total / count) * (total / count), 0).squareRoot()), 1e-6)
    }

    // Topic labels.
    let families = Set(benignTrain.map { corpus.records[$0].family }).sorted()
    let largest =
      families.map { family in benignTrain.filter { corpus.records[$0].family == family }.count }.max() ?? 0
    let useFamilies =
      settings.topics == "families"
      || (settings.topics == "auto" && families.count >= 3 && largest * 2 <= benignTrain.count)
    var centroids: Matrix?
    var trainLabels: [Int]
    var validationLabels: [Int]
    var classes: Int
    if useFamilies {
      guard families.count >= 2 else {
        throw DetectionError(.invalidInput, "topics=families needs at least two benign families")
      }
      trainLabels = benignTrain.map { families.firstIndex(of: corpus.records[$0].family) ?? 0 }
      validationLabels = benignValidation.map { families.firstIndex(of: corpus.records[$0].family) ?? 0 }
      let known = Set(families)
      validationLabels = zip(benignValidation, validationLabels).compactMap {
        known.contains(corpus.records[$0.0].family) ? $0.1 : nil
      }
      classes = families.count
    } else {
      let points = Matrix(
        rows: benignTrain.count, columns: d, storage: benignTrain.flatMap { pooled[$0] ?? [] })
      let k = min(settings.topicCount, max(2, benignTrain.count / 2))
      let fitted = KMeans.fit(points, k: k, iterations: 30, random: &random)
      centroids = fitted
      trainLabels = KMeans.assign(points, centroids: fitted)
      var validationPooled: [Float] = []
      var vStart = 0
      while vStart < benignValidation.count {
        let end = min(vStart + chunkSize, benignValidation.count)
        for embedding in try load(benignValidation[vStart..<end]) {
          validationPooled += meanRow(embedding.hidden)
        }
        vStart = end
      }
      validationLabels = KMeans.assign(
        Matrix(rows: benignValidation.count, columns: d, storage: validationPooled), centroids: fitted)
      classes = k
    }
    progress?.note(
      "feature network: \(classes) topic classes (\(useFamilies ? "benign families" : "k-means"))")

    // Inputs.
    func tensor(_ indices: [Int]) throws(DetectionError) -> Tensor {
      var storage: [Float] = []
      storage.reserveCapacity(indices.count * length * d)
      var first = 0
      while first < indices.count {
        let end = min(first + chunkSize, indices.count)
        storage +=
          FeatureNetworkModel.input(
            try load(indices[first..<end]), mean: mean, deviation: deviation, length: length
          ).tensor.storage
        first = end
      }
      return Tensor(shape: [indices.count, length, d], storage: storage)
    }
    let trainInputs = try tensor(benignTrain)
    let validationIndices =
      useFamilies
      ? benignValidation.filter { families.contains(corpus.records[$0].family) } : benignValidation
    let validationInputs = validationIndices.isEmpty ? nil : try tensor(validationIndices)

    let network = FeatureNetworkModel.architecture(settings, hiddenSize: d, classes: classes, random: &random)
    let optimizer = Adam(parameters: network.parameters, learningRate: settings.learningRate)
    progress?.note(
      "feature network: training on \(benignTrain.count) benign prompts, up to \(settings.epochs) epochs")
    let clock = ContinuousClock()
    let begun = clock.now
    do {
      let history = try Trainer.fit(
        network: network, optimizer: optimizer, inputs: trainInputs, labels: trainLabels,
        validation: validationInputs.map { ($0, validationLabels) },
        configuration: TrainingConfiguration(
          epochs: settings.epochs, batchSize: settings.batchSize,
          patience: validationInputs != nil && settings.patience > 0 ? settings.patience : nil),
        random: &random)
      if let last = history.last {
        let accuracy = last.validationAccuracy.map { String(format: "%.3f", $0) } ?? "n/a"
        progress?.note(
          "feature network: \(history.count) epochs in \(String(format: "%.1f", ProgressReporter.seconds(clock.now - begun))) s, "
            + "last training loss \(String(format: "%.4f", last.trainingLoss)), validation accuracy \(accuracy)"
        )
      }
    } catch {
      throw DetectionError(.internalError, "feature network training failed: \(error.message)")
    }
    let model = FeatureNetworkModel(
      settings: settings, hiddenSize: d, classes: classes, inputMean: mean, inputStandardDeviation: deviation,
      tensors: network.exportTensors())
    return (model, centroids)
  }

  /// The mean of the rows of `[rows, columns]`: `[columns]`.
  static func meanRow(_ matrix: Matrix) -> [Float] {
    var result = [Float](repeating: 0, count: matrix.columns)
    guard matrix.rows > 0 else { return result }
    for row in 0..<matrix.rows {
      for c in 0..<matrix.columns { result[c] += matrix.storage[row * matrix.columns + c] }
    }
    let scale = 1 / Float(matrix.rows)
    return result.map { $0 * scale }
  }
}

/// Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii 2007), deterministic for a
/// generator state; distances use one GEMM per iteration.
enum KMeans {
  /// Fits `k` centroids to the rows of `points` (`[n, d]`): returns `[k, d]`.
  static func fit(_ points: Matrix, k: Int, iterations: Int, random: inout NetworkRandom) -> Matrix {
    let n = points.rows
    let d = points.columns
    precondition(n >= k && k >= 1, "k-means needs at least k points")
    var chosen = [Int(random.next() % UInt64(n))]
    var nearest = [Float](repeating: .infinity, count: n)
    while chosen.count < k {
      let last = points.row(chosen[chosen.count - 1])
      var total: Double = 0
      for i in 0..<n {
        var distance: Float = 0
        for c in 0..<d {
          let delta = points.storage[i * d + c] - last[c]
          distance += delta * delta
        }
        nearest[i] = min(nearest[i], distance)
        total += Double(nearest[i])
      }
      var target = Double(random.nextUnit()) * total
      var pick = n - 1
      for i in 0..<n {
        target -= Double(nearest[i])
        if target <= 0 {
          pick = i
          break
        }
      }
      chosen.append(pick)
    }
    var centroids = Matrix(rows: k, columns: d, storage: chosen.flatMap { points.row($0) })
    for _ in 0..<iterations {
      let labels = assign(points, centroids: centroids)
      var sums = [Float](repeating: 0, count: k * d)
      var counts = [Int](repeating: 0, count: k)
      for i in 0..<n {
        counts[labels[i]] += 1
        for c in 0..<d { sums[labels[i] * d + c] += points.storage[i * d + c] }
      }
      var next = centroids
      for j in 0..<k where counts[j] > 0 {
        for c in 0..<d { next.storage[j * d + c] = sums[j * d + c] / Float(counts[j]) }
      }
      if next == centroids { break }
      centroids = next
    }
    return centroids
  }

  /// The index of the nearest centroid of each row: `[n]`.
  static func assign(_ points: Matrix, centroids: Matrix) -> [Int] {
    guard points.rows > 0 else { return [] }
    let products = BLAS.matmul(points, centroids, transposeB: true)
    let norms = (0..<centroids.rows).map { j in centroids.row(j).reduce(0) { $0 + $1 * $1 } }
    return (0..<points.rows).map { i in
      var best = 0
      var bestValue = Float.infinity
      for j in 0..<centroids.rows {
        let value = norms[j] - 2 * products.storage[i * centroids.rows + j]
        if value < bestValue {
          bestValue = value
          best = j
        }
      }
      return best
    }
  }
}

/// A compact test-split summary stored in bundles (the full report is `curvalid evaluate`'s).
enum EvaluationSummary {
  /// ROC-AUC, accuracy, TPR and FPR at the threshold, and counts.
  static func compute(_ examples: [ScoredExample], threshold: Float) -> [String: Double] {
    let positives = examples.filter(\.isAttack)
    let negatives = examples.filter { !$0.isAttack }
    var result: [String: Double] = [
      "test_attacks": Double(positives.count), "test_benign": Double(negatives.count),
      "threshold": Double(threshold),
    ]
    guard !positives.isEmpty, !negatives.isEmpty else { return result }
    let truePositives = positives.filter { $0.score >= threshold }.count
    let falsePositives = negatives.filter { $0.score >= threshold }.count
    result["tpr"] = Double(truePositives) / Double(positives.count)
    result["fpr"] = Double(falsePositives) / Double(negatives.count)
    result["accuracy"] =
      Double(truePositives + negatives.count - falsePositives) / Double(examples.count)
    result["roc_auc"] = rocAUC(positives: positives.map(\.score), negatives: negatives.map(\.score))
    return result
  }

  /// The probability that a random positive outscores a random negative (ties count half).
  static func rocAUC(positives: [Float], negatives: [Float]) -> Double {
    let sorted = negatives.sorted()
    var total: Double = 0
    for score in positives {
      var low = 0
      var high = sorted.count
      while low < high {
        let mid = (low + high) / 2
        if sorted[mid] < score { low = mid + 1 } else { high = mid }
      }
      var equalEnd = low
      while equalEnd < sorted.count && sorted[equalEnd] == score { equalEnd += 1 }
      total += Double(low) + 0.5 * Double(equalEnd - low)
    }
    return total / (Double(positives.count) * Double(sorted.count))
  }
}
