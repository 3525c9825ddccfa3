import Testing
@testable import Training

@Suite struct NumpyArrayTests {
    @Test func headerAndLittleEndianValuesAsNumpyWritesThem() {
        let bytes = NumpyArray.float32([1, -2, 0.5, 3, 4, 5], shape: [2, 3])
        #expect(Array(bytes.prefix(8)) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])   // \x93NUMPY, version 1.0
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        #expect((10 + headerLength) % 64 == 0 && bytes.count == 10 + headerLength + 24)
        let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
        #expect(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") && header.hasSuffix(" \n"))
        #expect(Array(bytes[(10 + headerLength)...].prefix(8)) == [0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0])   // 1.0, -2.0
        let vector = NumpyArray.float32([7], shape: [1])
        #expect(String(decoding: vector[10..<74], as: UTF8.self).contains("'shape': (1,)"))
    }
}
