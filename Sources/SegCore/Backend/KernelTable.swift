// MARK: - Kernel table

/// One kernel for ops of type `P`: the output buffers (one per type in `outputs`) computed from
/// the operands, or nil when it declines these operands (a dtype or layout it does not take), so
/// that the next candidate of the table runs.
public typealias TypedKernel<P: Primitive> =
  (_ op: P, _ inputs: [Operand], _ outputs: [TensorType]) throws -> [any DeviceStorage]?

/// A backend's kernels, registered once per primitive type as an ordered list of named candidates
/// (say the CPU's blocked kernel, then oneDNN, then a Swift kernel): an op runs the first candidate
/// that does not decline. A fallback is therefore a rule written in the table, and every candidate
/// can be enumerated and tested on its own (`restricted(_:to:)`).
///
/// Kernels receive their op with its own type: no backend recovers an op from `any Primitive`.
public struct KernelTable: @unchecked Sendable {
  /// One registered primitive type and the names of its candidates, in the order they are tried.
  public struct Entry {
    public let type: any Primitive.Type
    public var candidates: [String] { list.names }
    fileprivate var list: AnyCandidateList
  }

  /// The backend's name, for messages.
  public var backendName: String
  private var entries: [ObjectIdentifier: Entry] = [:]

  /// An empty table of the backend named `backendName`.
  public init(backendName: String) { self.backendName = backendName }

  // MARK: Registering

  /// Appends `kernel`, named `candidate`, to the candidates for ops of type `P` with one output.
  public mutating func register<P: Primitive>(
    _ type: P.Type, _ candidate: String,
    _ kernel: @escaping (_ op: P, _ inputs: [Operand], _ output: TensorType) throws -> (any DeviceStorage)?
  ) {
    registerOutputs(type, candidate) { op, inputs, outputs in try kernel(op, inputs, outputs[0]).map { [$0] } }
  }

  /// Appends `kernel`, named `candidate`, to the candidates for ops of type `P` (any number of
  /// outputs); with `first`, puts it before the others (a wrapper that intercepts some ops).
  public mutating func registerOutputs<P: Primitive>(
    _ type: P.Type, _ candidate: String, first: Bool = false, _ kernel: @escaping TypedKernel<P>
  ) {
    let key = ObjectIdentifier(type)
    let list = (entries[key]?.list as? CandidateList<P>) ?? CandidateList<P>()
    entries[key] = Entry(type: type, list: list.adding(candidate, kernel, first: first))
  }

  // MARK: Reading

  /// Every registered primitive type with its candidates, in no particular order.
  public var registered: [Entry] { Array(entries.values) }

  /// The names of the candidates for ops of `type`, in the order they are tried.
  public func candidates(for type: any Primitive.Type) -> [String] { entries[ObjectIdentifier(type)]?.candidates ?? [] }

  /// Whether some registered type has ops of `kind`.
  public func covers(_ kind: OpKind) -> Bool { entries.values.contains { $0.type.kinds.contains(kind) } }

  /// The same table with only the candidate named `candidate` left for ops of `type` (every
  /// other type keeps all of its own), so that this one candidate can be tested.
  public func restricted(_ type: any Primitive.Type, to candidate: String) -> KernelTable {
    var copy = self
    let key = ObjectIdentifier(type)
    if let entry = entries[key] { copy.entries[key]?.list = entry.list.keeping(candidate) }
    return copy
  }

  // MARK: Running

  /// The outputs of `op` on `inputs`: the first candidate that does not decline. Errors name the
  /// op, its operands and the candidates that declined.
  public func run(_ op: any Primitive, _ inputs: [Operand], outputs: [TensorType]) throws -> [any DeviceStorage] {
    guard let entry = entries[ObjectIdentifier(type(of: op))] else {
      throw TensorError(op: op.kind.rawValue, operands: inputs.map(\.type), "the \(backendName) backend has no kernel for this op")
    }
    guard let result = try op.runFirstAccepting(entry.list, inputs, outputs) else {
      throw TensorError(
        op: op.kind.rawValue, operands: inputs.map(\.type),
        "every kernel of the \(backendName) backend for this op (\(entry.candidates.joined(separator: ", "))) declined these operands")
    }
    precondition(result.count == outputs.count, "\(op): a \(backendName) kernel returned \(result.count) outputs for \(outputs.count)")
    return result
  }

  /// The outputs of `op` from the one candidate named `candidate`, or nil when it declines (or
  /// there is no such candidate): how a test runs each candidate on its own.
  public func run(candidate: String, _ op: any Primitive, _ inputs: [Operand], outputs: [TensorType]) throws -> [any DeviceStorage]? {
    guard let entry = entries[ObjectIdentifier(type(of: op))] else { return nil }
    return try op.runFirstAccepting(entry.list.keeping(candidate), inputs, outputs)
  }
}

// MARK: - Candidate lists

/// A type-erased list of the candidates of one primitive type.
fileprivate protocol AnyCandidateList: AnyObject {
  var names: [String] { get }
  func keeping(_ name: String) -> AnyCandidateList
}

/// The candidates for ops of type `P`, in order.
fileprivate final class CandidateList<P: Primitive>: AnyCandidateList {
  let items: [(name: String, kernel: TypedKernel<P>)]

  init(_ items: [(name: String, kernel: TypedKernel<P>)] = []) { self.items = items }

  var names: [String] { items.map(\.name) }

  func adding(_ name: String, _ kernel: @escaping TypedKernel<P>, first: Bool) -> CandidateList<P> {
    CandidateList(first ? [(name, kernel)] + items : items + [(name, kernel)])
  }

  func keeping(_ name: String) -> AnyCandidateList { CandidateList(items.filter { $0.name == name }) }
}

extension Primitive {
  /// Runs the candidates registered for `Self` in `list` until one accepts; nil when all decline.
  /// Inside this extension the op has its own type, so the kernels receive it typed.
  fileprivate func runFirstAccepting(
    _ list: AnyCandidateList, _ inputs: [Operand], _ outputs: [TensorType]
  ) throws -> [any DeviceStorage]? {
    // The list was registered under ObjectIdentifier(Self.self), so it holds Self's candidates.
    let typed = unsafeDowncast(list, to: CandidateList<Self>.self)
    for candidate in typed.items {
      if let result = try candidate.kernel(self, inputs, outputs) { return result }
    }
    return nil
  }
}
