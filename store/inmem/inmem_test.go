package inmem_test

import (
	"testing"

	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/inmem"
	"github.com/wardgate/wardgate/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Ledger { return inmem.New() })
}
