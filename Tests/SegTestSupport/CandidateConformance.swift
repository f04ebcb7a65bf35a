import SegCore
import Testing

// MARK: - One kernel candidate against the reference

/// Runs every op case of `candidate`'s primitive type (`OpCases.all`, then `extraCases`) at each
/// of `dtypes` the case has, with that type's ops forced onto the candidate (`CandidateBackend`
/// over `base`, wrapped by `wrap` where the inputs need another form), against the reference.
/// Expects every comparison to pass and the candidate to have computed at least one case, so that
/// it really was tested. A case the candidate declines is not compared, which only `mayDecline`
/// allows (a kernel for some layouts or shapes only).
public func expectCandidateConforms(
  _ candidate: KernelCandidate, of base: any Backend, dtypes: [DType], extraCases: [OpCase] = [],
  mayDecline: Bool = false, options: OpConformance.Options = OpConformance.Options(),
  wrap: (CandidateBackend) -> any Backend = { $0 }, sourceLocation: SourceLocation = #_sourceLocation
) {
  let forced = CandidateBackend(base, forcing: candidate)
  let backend = wrap(forced)
  let cases = (OpCases.all + extraCases).filter { candidate.type.kinds.contains($0.kind) }
  for c in cases {
    for dtype in dtypes where c.dtypes.contains(dtype) {
      let declinedBefore = forced.declined
      let rows = OpConformance.check(
        c, dtype: dtype, candidate: backend, baseline: ReferenceBackend.shared, options: options)
      if forced.declined > declinedBefore {
        if !mayDecline { Issue.record("\(candidate) declined \(c) at \(dtype)", sourceLocation: sourceLocation) }
        continue
      }
      #expect(!rows.isEmpty, "\(candidate): \(c) \(dtype): nothing compared", sourceLocation: sourceLocation)
      for r in rows where !r.passed {
        Issue.record("\(candidate): \(r.failureText)", sourceLocation: sourceLocation)
      }
    }
  }
  #expect(
    forced.accepted > 0, "\(candidate) computed none of its \(cases.count) cases at \(dtypes): it was not tested",
    sourceLocation: sourceLocation)
}
