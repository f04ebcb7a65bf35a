import CDNNL
import SegCore
