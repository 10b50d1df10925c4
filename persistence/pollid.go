package persistence

import (
	"encoding/binary"

	"github.com/heepr/heeprd/actors"
)

// pollIDBytes is the size of an agent id packed for the poll log: its 16 characters after the
// prefix, 5 bits each, are 80 bits.
const pollIDBytes = 10

// idValues maps each character of actors.IDAlphabet to the 5 bits it stands for.
var idValues = func() (values [256]byte) {
	for i := range len(actors.IDAlphabet) {
		values[actors.IDAlphabet[i]] = byte(i)
	}
	return values
}()

// appendPollID appends chars, the 16 characters of an agent id after its prefix, packed into
// pollIDBytes bytes. The fleet only holds valid ids, so chars holds alphabet characters only.
func appendPollID(dst []byte, chars string) []byte {
	var top, bottom uint64 // the 80 bits: 16 in top, 64 in bottom
	for i := range pollIDLen {
		top = top<<5 | bottom>>59
		bottom = bottom<<5 | uint64(idValues[chars[i]])
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(top))
	return binary.BigEndian.AppendUint64(dst, bottom)
}

// pollIDChars unpacks what appendPollID packed into the id's characters, as the two big-endian
// words a pollTime holds.
func pollIDChars(packed []byte) (hi, lo uint64) {
	top := uint64(binary.BigEndian.Uint16(packed))
	bottom := binary.BigEndian.Uint64(packed[2:])
	var chars [pollIDLen]byte
	for i := pollIDLen - 1; i >= 0; i-- {
		chars[i] = actors.IDAlphabet[bottom&31]
		bottom = bottom>>5 | top<<59
		top >>= 5
	}
	return binary.BigEndian.Uint64(chars[:8]), binary.BigEndian.Uint64(chars[8:])
}
