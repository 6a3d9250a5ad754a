package otlp

import "google.golang.org/protobuf/encoding/protowire"

// PartialSuccess is an export response's partial_success: how many records the receiver
// rejected, and why.
type PartialSuccess struct {
	Rejected int64
	Message  string
}

// AppendResponse appends an ExportLogsServiceResponse; a zero p is an empty response.
func AppendResponse(b []byte, p PartialSuccess) []byte {
	if p == (PartialSuccess{}) {
		return b
	}
	return appendMsg(b, 1, func(b []byte) []byte {
		if p.Rejected != 0 {
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(p.Rejected))
		}
		return appendString(b, 2, p.Message)
	})
}

// DecodeResponse reads an ExportLogsServiceResponse.
func DecodeResponse(b []byte) (PartialSuccess, error) {
	var p PartialSuccess
	err := eachField(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		if err := f.want(protowire.BytesType, "partial_success"); err != nil {
			return err
		}
		return eachField(f.b, func(f field) error {
			switch f.num {
			case 1:
				if err := f.want(protowire.VarintType, "rejected_log_records"); err != nil {
					return err
				}
				p.Rejected = int64(f.u)
			case 2:
				if err := f.want(protowire.BytesType, "error_message"); err != nil {
					return err
				}
				p.Message = string(f.b)
			}
			return nil
		})
	})
	return p, err
}

// AppendStatus appends a google.rpc.Status (code, message): the body of an OTLP/HTTP error
// answer in protobuf.
func AppendStatus(b []byte, code int32, msg string) []byte {
	if code != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(code)))
	}
	return appendString(b, 2, msg)
}
