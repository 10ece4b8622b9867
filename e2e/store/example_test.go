package store_test

import (
	"errors"
	"fmt"

	"github.com/securejingle/securejingle/e2e/store"
)

func Example() {
	s := store.NewMemory()
	defer s.Close()

	// Both writes commit together, or neither does.
	err := s.Update(func(tx store.Tx) error {
		if err := tx.Put("sessions", "juliet@capulet.example/1", []byte("ratchet state")); err != nil {
			return err
		}
		return tx.Put("replay", "msg-1", []byte{1})
	})
	if err != nil {
		panic(err)
	}
	errAbort := errors.New("abort")
	err = s.Update(func(tx store.Tx) error {
		_ = tx.Put("sessions", "juliet@capulet.example/1", []byte("half-written"))
		return errAbort
	})
	fmt.Println(errors.Is(err, errAbort))
	_ = s.View(func(tx store.Tx) error {
		v, err := tx.Get("sessions", "juliet@capulet.example/1")
		fmt.Printf("%s %v\n", v, err)
		_, err = tx.Get("sessions", "romeo@montague.example/1")
		fmt.Println(errors.Is(err, store.ErrNotFound))
		return nil
	})
	// Output:
	// true
	// ratchet state <nil>
	// true
}
