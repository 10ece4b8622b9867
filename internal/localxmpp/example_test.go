package localxmpp_test

import (
	"fmt"

	"github.com/securejingle/securejingle/internal/localxmpp"
)

func ExampleParseStanza() {
	st, err := localxmpp.ParseStanza([]byte(`<message xmlns="jabber:client" to="bob@example.test" type="chat"><body>hi</body></message>`))
	if err != nil {
		panic(err)
	}
	fmt.Println(st.Name, st.To, st.Type)
	fmt.Println(st)
	// Output:
	// message bob@example.test chat
	// <message to='bob@example.test' type='chat'><body>hi</body></message>
}

func ExampleServer() {
	srv, err := localxmpp.New("example.test")
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	if err := srv.AddUser("alice", "secret"); err != nil {
		panic(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		panic(err)
	}
	// Clients dial srv.Addr() and trust srv.ClientTLSConfig().
	fmt.Println(srv.ClientTLSConfig().ServerName, srv.Stats().Sessions)
	// Output: example.test 0
}
