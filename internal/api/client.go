package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Client limits.
const (
	maxResponseBody = 8 << 20
	// maxEventLine bounds one line of the event stream.
	maxEventLine = 4 << 20
)

// A Client talks to the API of a running daemon over its Unix socket. Create
// it with [Dial]; it is safe for concurrent use. The zero Client is not
// usable.
type Client struct {
	hc *http.Client
}

// Dial returns a client for the API socket at path. It checks that path
// is a socket but does not connect yet: every call makes or reuses a
// connection.
func Dial(path string) (*Client, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("api: no daemon socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return nil, fmt.Errorf("api: %s is not a socket", path)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:       4,
		DisableCompression: true,
	}
	return &Client{hc: &http.Client{Transport: tr}}, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// StatusError is a non-success response. It unwraps to the sentinel error
// of its status code ([ErrInvalid] for 400, [ErrNotFound] for 404, ...)
// and to that of its reason, if more specific ([ErrSignerTimeout],
// [ErrIntegrity], ...).
type StatusError struct {
	Code    int
	Message string
	Reason  string // the reason token of the error body, if any
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("api: %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// Unwrap returns the sentinel errors of e's status code and reason.
func (e *StatusError) Unwrap() []error {
	var out []error
	if err := e.classError(); err != nil {
		out = append(out, err)
	}
	if err := errorOfReason(e.Reason); err != nil {
		out = append(out, err)
	}
	return out
}

func (e *StatusError) classError() error {
	switch e.Code {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return ErrInvalid
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusConflict:
		return ErrConflict
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	case http.StatusBadGateway:
		return ErrUpstream
	case http.StatusGatewayTimeout:
		return ErrTimeout
	}
	return nil
}

// do sends a request and returns the response of a 2xx status; any other
// status becomes a [*StatusError].
func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	return c.doHeader(ctx, method, path, body, nil)
}

// doHeader is do with extra request headers.
func (c *Client) doHeader(ctx context.Context, method, path string, body any, hdr http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
		hdr = hdr.Clone()
		if hdr == nil {
			hdr = http.Header{}
		}
		hdr.Set("Content-Type", "application/json")
	}
	return c.doRaw(ctx, method, path, rd, -1, hdr)
}

// doRaw sends a request with body rd (size bytes, -1 when unknown) and
// the headers hdr, and returns the response of a 2xx status; any other
// status becomes a [*StatusError].
func (c *Client) doRaw(ctx context.Context, method, path string, rd io.Reader, size int64, hdr http.Header) (*http.Response, error) {
	// The host is ignored: the transport dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://securejingle"+path, rd)
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var eb errorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = strings.TrimSpace(string(b))
		}
		return nil, &StatusError{Code: resp.StatusCode, Message: eb.Error, Reason: eb.Reason}
	}
	return resp, nil
}

// decodeResponse decodes a JSON response into out and closes it.
func decodeResponse(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); err != nil {
		return fmt.Errorf("api: bad response: %w", err)
	}
	return nil
}

// call does a request and decodes the JSON response into out.
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	return decodeResponse(resp, out)
}

// Status calls GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.call(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// Peers calls GET /v1/peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var r PeersResponse
	err := c.call(ctx, http.MethodGet, "/v1/peers", nil, &r)
	return r.Peers, err
}

// SendChat calls POST /v1/chat. A nil error means the message was handed
// to the server, not that it was delivered (see [Client.SendChatMessage]).
func (c *Client) SendChat(ctx context.Context, to, body string) error {
	_, err := c.SendChatMessage(ctx, to, body)
	return err
}

// SendChatMessage calls POST /v1/chat and returns the message's delivery
// state: its id, "sent", and the devices it was encrypted to.
func (c *Client) SendChatMessage(ctx context.Context, to, body string) (SentMessage, error) {
	var m SentMessage
	err := c.call(ctx, http.MethodPost, "/v1/chat", ChatRequest{To: to, Body: body}, &m)
	return m, err
}

// Messages calls GET /v1/messages: a page of the conversation history
// (both ways, with the delivery state of the messages sent from here),
// oldest first. The zero query is the newest page of every conversation.
func (c *Client) Messages(ctx context.Context, q MessagesQuery) (MessagesResponse, error) {
	v := url.Values{}
	if q.Peer != "" {
		v.Set("peer", q.Peer)
	}
	if q.Before != "" {
		v.Set("before", q.Before)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var r MessagesResponse
	err := c.call(ctx, http.MethodGet, withQuery("/v1/messages", v), nil, &r)
	return r, err
}

// Conversations calls GET /v1/conversations.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	var r ConversationsResponse
	err := c.call(ctx, http.MethodGet, "/v1/conversations", nil, &r)
	return r.Conversations, err
}

// Alerts calls GET /v1/alerts: a page of the audit log, newest first.
// Limit 0 asks for the default page size (use the unseen count of a
// page for the badge).
func (c *Client) Alerts(ctx context.Context, q AlertsQuery) (AlertsResponse, error) {
	v := url.Values{}
	if q.Text != "" {
		v.Set("q", q.Text)
	}
	if q.Before != "" {
		v.Set("before", q.Before)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var r AlertsResponse
	err := c.call(ctx, http.MethodGet, withQuery("/v1/alerts", v), nil, &r)
	return r, err
}

// MarkAlertsSeen calls POST /v1/alerts/seen: alert id and the older ones
// are seen ("" marks all).
func (c *Client) MarkAlertsSeen(ctx context.Context, id string) (SeenResponse, error) {
	var r SeenResponse
	err := c.call(ctx, http.MethodPost, "/v1/alerts/seen", SeenRequest{ID: id}, &r)
	return r, err
}

// UploadFile calls POST /v1/files/upload: body (size bytes, -1 when
// unknown) is sent to the daemon, which offers it to the bare JID peer
// under name.
func (c *Client) UploadFile(ctx context.Context, peer, name string, body io.Reader, size int64) (TransferInfo, error) {
	v := url.Values{"peer": {peer}, "name": {name}}
	resp, err := c.doRaw(ctx, http.MethodPost, withQuery("/v1/files/upload", v), body, size,
		http.Header{"Content-Type": {"application/octet-stream"}})
	if err != nil {
		return TransferInfo{}, err
	}
	var r TransferInfo
	err = decodeResponse(resp, &r)
	return r, err
}

// FileContent calls GET /v1/files/{id}/content for file index of a
// completed incoming transfer; the caller closes the body.
func (c *Client) FileContent(ctx context.Context, id string, index int) (*http.Response, error) {
	path := "/v1/files/" + url.PathEscape(id) + "/content"
	if index != 0 {
		path += "?file=" + strconv.Itoa(index)
	}
	return c.doRaw(ctx, http.MethodGet, path, nil, -1, nil)
}

// withQuery appends the encoded query v to path.
func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// SendIQ calls POST /v1/iq.
func (c *Client) SendIQ(ctx context.Context, req IQRequest) (IQResponse, error) {
	var r IQResponse
	err := c.call(ctx, http.MethodPost, "/v1/iq", req, &r)
	return r, err
}

// Verify calls GET /v1/verify.
func (c *Client) Verify(ctx context.Context, jid string) (VerifyInfo, error) {
	var v VerifyInfo
	q := url.Values{"jid": {jid}}
	err := c.call(ctx, http.MethodGet, "/v1/verify?"+q.Encode(), nil, &v)
	return v, err
}

// Trust calls POST /v1/trust.
func (c *Client) Trust(ctx context.Context, req TrustRequest) (TrustResult, error) {
	var r TrustResult
	err := c.call(ctx, http.MethodPost, "/v1/trust", req, &r)
	return r, err
}

// Devices calls GET /v1/devices.
func (c *Client) Devices(ctx context.Context) (DevicesInfo, error) {
	var r DevicesInfo
	err := c.call(ctx, http.MethodGet, "/v1/devices", nil, &r)
	return r, err
}

// ChangeDevices calls POST /v1/devices.
func (c *Client) ChangeDevices(ctx context.Context, req DevicesRequest) (DevicesInfo, error) {
	var r DevicesInfo
	err := c.call(ctx, http.MethodPost, "/v1/devices", req, &r)
	return r, err
}

// WebLogin calls POST [WebLoginPath]: a one-time login link of the web
// app.
func (c *Client) WebLogin(ctx context.Context) (WebLogin, error) {
	var r WebLogin
	err := c.call(ctx, http.MethodPost, WebLoginPath, struct{}{}, &r)
	return r, err
}

// Calls calls GET /v1/calls.
func (c *Client) Calls(ctx context.Context) ([]CallInfo, error) {
	var r CallsResponse
	err := c.call(ctx, http.MethodGet, "/v1/calls", nil, &r)
	return r.Calls, err
}

// Call calls GET /v1/calls/{id}.
func (c *Client) Call(ctx context.Context, id string) (CallInfo, error) {
	var r CallInfo
	err := c.call(ctx, http.MethodGet, "/v1/calls/"+url.PathEscape(id), nil, &r)
	return r, err
}

// PlaceCall calls POST /v1/calls: it returns once the proposal went out,
// with the new call in state proposed; "call" events report the rest.
func (c *Client) PlaceCall(ctx context.Context, req CallRequest) (CallInfo, error) {
	var r CallInfo
	err := c.call(ctx, http.MethodPost, "/v1/calls", req, &r)
	return r, err
}

// AnswerCall calls POST /v1/calls/{id}/answer.
func (c *Client) AnswerCall(ctx context.Context, id string, m CallMedia) (CallInfo, error) {
	var r CallInfo
	err := c.call(ctx, http.MethodPost, "/v1/calls/"+url.PathEscape(id)+"/answer", m, &r)
	return r, err
}

// DeclineCall calls POST /v1/calls/{id}/decline.
func (c *Client) DeclineCall(ctx context.Context, id string) (CallInfo, error) {
	var r CallInfo
	err := c.call(ctx, http.MethodPost, "/v1/calls/"+url.PathEscape(id)+"/decline", nil, &r)
	return r, err
}

// HangUp calls POST /v1/calls/{id}/hangup.
func (c *Client) HangUp(ctx context.Context, id string) (CallInfo, error) {
	var r CallInfo
	err := c.call(ctx, http.MethodPost, "/v1/calls/"+url.PathEscape(id)+"/hangup", nil, &r)
	return r, err
}

// MuteCall calls POST /v1/calls/{id}/mute.
func (c *Client) MuteCall(ctx context.Context, id string, m MuteRequest) (CallInfo, error) {
	var r CallInfo
	err := c.call(ctx, http.MethodPost, "/v1/calls/"+url.PathEscape(id)+"/mute", m, &r)
	return r, err
}

// Transfers calls GET /v1/files.
func (c *Client) Transfers(ctx context.Context) ([]TransferInfo, error) {
	var r TransfersResponse
	err := c.call(ctx, http.MethodGet, "/v1/files", nil, &r)
	return r.Transfers, err
}

// Transfer calls GET /v1/files/{id}.
func (c *Client) Transfer(ctx context.Context, id string) (TransferInfo, error) {
	var r TransferInfo
	err := c.call(ctx, http.MethodGet, "/v1/files/"+url.PathEscape(id), nil, &r)
	return r, err
}

// SendFiles calls POST /v1/files: it returns once the offer went out,
// with the new transfer in state offered; "file" events report the rest.
func (c *Client) SendFiles(ctx context.Context, req SendFilesRequest) (TransferInfo, error) {
	var r TransferInfo
	err := c.call(ctx, http.MethodPost, "/v1/files", req, &r)
	return r, err
}

// AcceptTransfer calls POST /v1/files/{id}/accept; dir "" saves into the
// daemon's download directory.
func (c *Client) AcceptTransfer(ctx context.Context, id, dir string) (TransferInfo, error) {
	var r TransferInfo
	err := c.call(ctx, http.MethodPost, "/v1/files/"+url.PathEscape(id)+"/accept", AcceptRequest{Dir: dir}, &r)
	return r, err
}

// DeclineTransfer calls POST /v1/files/{id}/decline.
func (c *Client) DeclineTransfer(ctx context.Context, id string) (TransferInfo, error) {
	return c.transferAction(ctx, id, actDecline)
}

// CancelTransfer calls POST /v1/files/{id}/cancel.
func (c *Client) CancelTransfer(ctx context.Context, id string) (TransferInfo, error) {
	return c.transferAction(ctx, id, actCancel)
}

// ResumeTransfer calls POST /v1/files/{id}/resume.
func (c *Client) ResumeTransfer(ctx context.Context, id string) (TransferInfo, error) {
	return c.transferAction(ctx, id, actResume)
}

func (c *Client) transferAction(ctx context.Context, id, action string) (TransferInfo, error) {
	var r TransferInfo
	err := c.call(ctx, http.MethodPost, "/v1/files/"+url.PathEscape(id)+"/"+action, nil, &r)
	return r, err
}

// Metrics calls GET /metrics and returns the Prometheus text.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	return string(b), err
}

// Events calls GET /v1/events. It returns once the daemon has subscribed:
// the stream gives the daemon's backlog (events marked Replayed), then
// every event published after Events returns (unless the stream falls
// behind and loses it, which the daemon counts). Cancelling ctx or calling
// [EventStream.Close] ends the stream.
func (c *Client) Events(ctx context.Context) (*EventStream, error) {
	return c.EventsAfter(ctx, "")
}

// EventsAfter is like [Client.Events] but resumes after the event with id
// last (sent as Last-Event-ID): the backlog holds only later events, or
// all buffered ones when last is no longer buffered.
func (c *Client) EventsAfter(ctx context.Context, last string) (*EventStream, error) {
	var hdr http.Header
	if last != "" {
		hdr = http.Header{"Last-Event-Id": {last}}
	}
	resp, err := c.doHeader(ctx, http.MethodGet, "/v1/events", nil, hdr)
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		resp.Body.Close()
		return nil, fmt.Errorf("api: events: unexpected content type %q", ct)
	}
	s := NewEventReader(resp.Body)
	// The ready comment comes once the subscription exists.
	if err := s.waitReady(); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return s, nil
}

// An EventStream reads events from a Server-Sent Events stream. It is not
// safe for concurrent use.
type EventStream struct {
	r     *bufio.Reader
	c     io.Closer
	ready bool
}

// NewEventReader returns a stream reading the events in rc, which it closes
// on [EventStream.Close].
func NewEventReader(rc io.ReadCloser) *EventStream {
	return &EventStream{r: bufio.NewReaderSize(rc, 64<<10), c: rc}
}

// ErrStreamFormat is returned for an event stream that does not follow
// the daemon's framing.
var ErrStreamFormat = errors.New("api: malformed event stream")

func (s *EventStream) line() (string, error) {
	var b []byte
	for {
		frag, err := s.r.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxEventLine {
			return "", fmt.Errorf("%w: line too long", ErrStreamFormat)
		}
		if err == nil {
			return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(b) > 0 {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

func (s *EventStream) waitReady() error {
	for !s.ready {
		_, err := s.next()
		switch {
		case err == nil:
			return fmt.Errorf("%w: event before the ready marker", ErrStreamFormat)
		case !errors.Is(err, errNoEvent):
			return err
		}
	}
	return nil
}

// errNoEvent: the block held only comments.
var errNoEvent = errors.New("api: no event in block")

// Next returns the next event, skipping comments and heartbeats. It returns
// io.EOF when the stream ends.
func (s *EventStream) Next() (Event, error) {
	for {
		ev, err := s.next()
		if errors.Is(err, errNoEvent) {
			continue
		}
		return ev, err
	}
}

// next reads one block: lines up to a blank line.
func (s *EventStream) next() (Event, error) {
	var data []string
	id, haveID := "", false
	for {
		l, err := s.line()
		if err != nil {
			return Event{}, err
		}
		switch {
		case l == "":
			if len(data) == 0 {
				return Event{}, errNoEvent
			}
			if len(data) > 1 {
				return Event{}, fmt.Errorf("%w: more than one data line", ErrStreamFormat)
			}
			var ev Event
			if err := json.Unmarshal([]byte(data[0]), &ev); err != nil {
				return Event{}, fmt.Errorf("%w: %v", ErrStreamFormat, err)
			}
			if haveID && ev.ID != id {
				return Event{}, fmt.Errorf("%w: id line and event id differ", ErrStreamFormat)
			}
			return ev, nil
		case strings.HasPrefix(l, ":"):
			if l+"\n\n" == sseReady {
				s.ready = true
			}
		case strings.HasPrefix(l, "data: "):
			data = append(data, l[len("data: "):])
		case strings.HasPrefix(l, "id: "):
			if haveID {
				return Event{}, fmt.Errorf("%w: more than one id line", ErrStreamFormat)
			}
			id, haveID = l[len("id: "):], true
		default:
			return Event{}, fmt.Errorf("%w: unexpected line", ErrStreamFormat)
		}
	}
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.c.Close() }
