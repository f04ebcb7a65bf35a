import SegCPU
import Testing

// MARK: - Settings from the environment

@Suite struct CPUBackendOptionsTests {
  @Test func unsetOrEmptyKeepsTheDefault() throws {
    #expect(try CPUBackendOptions(environment: [:]).recycledBufferLimit == 1 << 30)
    #expect(try CPUBackendOptions(environment: ["UNET_CPU_BUFFER_POOL_MB": ""]) == CPUBackendOptions())
    #expect(try CPUBackendOptions(environment: ["OTHER": "5"]) == CPUBackendOptions())
  }

  @Test func theBufferPoolInMiB() throws {
    #expect(try CPUBackendOptions(environment: ["UNET_CPU_BUFFER_POOL_MB": "256"]).recycledBufferLimit == 256 << 20)
    #expect(try CPUBackendOptions(environment: ["UNET_CPU_BUFFER_POOL_MB": "0"]).recycledBufferLimit == 0)
  }

  @Test(arguments: ["abc", "-1", "1.5", " 64", "64MB", "99999999999999999999"])
  func anInvalidValueNamesTheVariable(value: String) {
    #expect { try CPUBackendOptions(environment: ["UNET_CPU_BUFFER_POOL_MB": value]) } throws: {
      "\($0)".hasPrefix("UNET_CPU_BUFFER_POOL_MB=\(value): expected a whole number of MiB, 0 or more")
    }
  }

  /// Configuring the backend sets its buffer pool; the shared backend gets its old options back.
  @Test func configureAppliesTheLimit() {
    let cpu = CPUBackend.shared
    let before = cpu.options
    defer { cpu.configure(before) }
    cpu.configure(CPUBackendOptions(recycledBufferLimit: 384 << 20))
    #expect(cpu.recycledBufferLimit == 384 << 20)
    #expect(cpu.options.recycledBufferLimit == 384 << 20)
  }
}
