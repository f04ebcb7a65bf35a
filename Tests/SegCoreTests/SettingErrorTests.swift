import SegCore
import Testing

// MARK: - Setting errors

@Suite struct SettingErrorTests {
  @Test func settingsInTheReasonStaySettingsUntilPrinted() {
    let e = SettingError(.maxSteps, value: 3, "leaves no timed step after \(Setting.warmupSteps) \(3); raise \(Setting.maxSteps)")
    #expect(e.setting == .maxSteps && e.value == "3")
    #expect(e.reason.settings == [.warmupSteps, .maxSteps])
    #expect(e.reason.parts.first == .text("leaves no timed step after "))
    #expect(e.description == "maxSteps 3: leaves no timed step after warmupSteps 3; raise maxSteps")
    let flags = e.description { "--" + $0.rawValue.lowercased() }
    #expect(flags == "--maxsteps 3: leaves no timed step after --warmupsteps 3; raise --maxsteps")
  }

  @Test func aMissingValueIsLeftOut() {
    let e = SettingError(.modelDirectory, "needed to evaluate")
    #expect(e.value == nil && e.description == "modelDirectory: needed to evaluate")
    #expect(SettingText("plain").parts == [.text("plain")] && SettingText("plain").settings.isEmpty)
  }
}
