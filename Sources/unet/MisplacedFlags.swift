import ArgumentParser
import Foundation

// MARK: - Flags of other subcommands

/// The tool's commands and their long flags, read from argument-parser's own description of the
/// tool, so that a flag given to a subcommand that does not take it can be named as belonging
/// elsewhere (argument-parser alone says only "Unknown option").
struct CommandFlags: Decodable {
  /// One argument: its names, e.g. `long` "batch-size" and `long` "batch_size".
  struct Argument: Decodable {
    struct Name: Decodable {
      let kind: String
      let name: String
    }
    let names: [Name]?
  }

  let commandName: String
  let defaultSubcommand: String?
  let subcommands: [CommandFlags]?
  let arguments: [Argument]?

  /// "--name" for every long name of every argument.
  var flags: Set<String> {
    Set((arguments ?? []).flatMap { ($0.names ?? []).filter { $0.kind == "long" }.map { "--" + $0.name } })
  }

  /// The tree of `command` and its subcommands.
  static func of(_ command: ParsableCommand.Type) -> CommandFlags? {
    struct Dump: Decodable { let command: CommandFlags }
    return try? JSONDecoder().decode(Dump.self, from: Data(command._dumpHelp().utf8)).command
  }

  /// Every command at or below this one that runs (has no subcommands, or a default one), with
  /// its full name, e.g. ("unet benchmark kernels", ...).
  func runnable(prefix: String = "") -> [(name: String, command: CommandFlags)] {
    let name = prefix.isEmpty ? commandName : prefix + " " + commandName
    let below = (subcommands ?? []).flatMap { $0.runnable(prefix: name) }
    return (subcommands ?? []).isEmpty ? [(name, self)] : below
  }

  /// The command that `arguments` run (following subcommand names, then default subcommands)
  /// with its full name, and the arguments left for it.
  func resolve(_ arguments: [String]) -> (name: String, command: CommandFlags, rest: ArraySlice<String>) {
    var (name, command, rest) = (commandName, self, arguments[...])
    while let next = rest.first, let sub = command.subcommands?.first(where: { $0.commandName == next }) {
      (name, command) = (name + " " + sub.commandName, sub)
      rest = rest.dropFirst()
    }
    while let d = command.defaultSubcommand, let sub = command.subcommands?.first(where: { $0.commandName == d }) {
      (name, command) = (name + " " + sub.commandName, sub)
    }
    return (name, command, rest)
  }
}

/// The message for the first flag in `arguments` that the command they run does not take but
/// another command does, e.g. "--augment does not apply to unet evaluate; it is an option of unet
/// train"; nil when every flag is the command's own (argument-parser reports the rest).
func misplacedFlagMessage(_ arguments: [String], root: ParsableCommand.Type) -> String? {
  guard let tree = CommandFlags.of(root) else { return nil }
  let (name, command, rest) = tree.resolve(arguments)
  guard (command.subcommands ?? []).isEmpty else { return nil }
  let own = command.flags
  for argument in rest {
    if argument == "--" { break }
    guard argument.hasPrefix("--"), argument.count > 2 else { continue }
    let flag = String(argument.prefix { $0 != "=" })
    guard !own.contains(flag) else { continue }
    let owners = tree.runnable().filter { $0.command.flags.contains(flag) }.map(\.name)
    guard !owners.isEmpty else { continue }
    return "\(flag) does not apply to \(name); it is an option of \(owners.joined(separator: ", ")). See '\(name) --help' for the options of \(name)."
  }
  return nil
}
