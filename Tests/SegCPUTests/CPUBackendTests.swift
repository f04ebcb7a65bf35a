import SegCPU
import Testing
