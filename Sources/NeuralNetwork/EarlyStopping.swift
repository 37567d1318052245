/// Stops training when a monitored value (lower is better, e.g. validation loss) has not improved
/// for `patience` consecutive epochs, and keeps a copy of the best network's tensors so they can
/// be restored (Keras `EarlyStopping(patience=…, restore_best_weights=True)`).
public struct EarlyStopping {
  /// Epochs without improvement tolerated before stopping (≥ 1).
  public let patience: Int
  /// The minimum decrease that counts as an improvement.
  public let minimumDelta: Float
  /// The best value so far.
  public private(set) var bestValue: Float?
  /// The 0-based epoch of the best value.
  public private(set) var bestEpoch: Int?
  /// The network's tensors at the best epoch.
  public private(set) var bestTensors: [NamedTensor]?
  /// Epochs recorded so far.
  public private(set) var epochs = 0
  private var epochsWithoutImprovement = 0

  /// Creates the helper.
  /// - Parameters:
  ///   - patience: Epochs without improvement before stopping (≥ 1).
  ///   - minimumDelta: Minimum decrease counted as improvement (≥ 0).
  public init(patience: Int, minimumDelta: Float = 0) {
    precondition(patience >= 1 && minimumDelta >= 0, "EarlyStopping: bad patience or delta")
    self.patience = patience
    self.minimumDelta = minimumDelta
  }

  /// Records one epoch's monitored value, snapshotting the network when it improves.
  /// - Parameters:
  ///   - value: The monitored value (lower is better); NaN never improves.
  ///   - network: The network whose tensors to keep on improvement.
  /// - Returns: `true` when training should stop.
  public mutating func record(_ value: Float, network: Sequential) -> Bool {
    defer { epochs += 1 }
    let improved = !value.isNaN && (bestValue.map { value < $0 - minimumDelta } ?? true)
    if improved {
      bestValue = value
      bestEpoch = epochs
      bestTensors = network.exportTensors()
      epochsWithoutImprovement = 0
      return false
    }
    epochsWithoutImprovement += 1
    return epochsWithoutImprovement >= patience
  }

  /// Loads the best epoch's tensors into `network` (nothing happens before the first improvement).
  /// - Parameter network: The network that was recorded.
  /// - Throws: `NetworkError` if the tensors do not fit the network.
  public func restoreBest(into network: Sequential) throws(NetworkError) {
    guard let bestTensors else { return }
    try network.importTensors(bestTensors)
  }
}
