package cluster_test

import (
	"testing"

	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
