package filexfer

import "time"

// SetIBBAcceptWait sets ibbAcceptWait for a test and returns the undo.
func SetIBBAcceptWait(d time.Duration) func() {
	old := ibbAcceptWait
	ibbAcceptWait = d
	return func() { ibbAcceptWait = old }
}

// CloseIBBListener closes the mellium listener of the registered
// receiving stream sid, so that mellium refuses the peer's open: the
// case in which no stream ever reaches the Accept goroutine.
func (m *IBBStreams) CloseIBBListener(sid string) {
	m.mu.Lock()
	st := m.streams[sid]
	m.mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closeListener()
}
