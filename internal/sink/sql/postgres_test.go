package sqlsink

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/message"
)

// TestPGConnectionLoss kills the sink's server connection: the next write may fail, but only
// transiently, and the pool then reconnects.
func TestPGConnectionLoss(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	app := "weirtest_" + randHex()
	db := e.open(t, "pool_max_conns=1&application_name="+app)
	tbl, err := db.Table(t.Context(), TableConfig{Name: e.tableName("lossy")})
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Write(t.Context(), []message.Message{msg("a", `{}`)}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.query(t, "SELECT CAST(pg_terminate_backend(pid) AS TEXT) FROM pg_stat_activity WHERE application_name = '"+app+"'")); n != 1 {
		t.Fatalf("terminated %d backends, want 1", n)
	}
	err = tbl.Write(t.Context(), []message.Message{msg("b", `{}`)})
	if fault.IsPermanent(err) {
		t.Fatalf("Write on a killed connection = %v, want nil or transient", err)
	}
	t.Logf("first write after the kill: %v", err)
	if err != nil {
		if err := tbl.Write(t.Context(), []message.Message{msg("b", `{}`)}); err != nil {
			t.Fatalf("Write after reconnecting: %v", err)
		}
	}
	if n := e.count(t, e.tableName("lossy")); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
}

func TestClassifyPG(t *testing.T) {
	for code, permanent := range map[string]bool{
		"22P02": true,  // invalid_text_representation
		"23505": true,  // unique_violation
		"23514": true,  // check_violation
		"42P01": true,  // undefined_table
		"54000": true,  // program_limit_exceeded
		"40001": false, // serialization_failure
		"40P01": false, // deadlock_detected
		"53300": false, // too_many_connections
		"55P03": false, // lock_not_available
		"57P01": false, // admin_shutdown
		"08006": false, // connection_failure
	} {
		err := classifyPG(&pgconn.PgError{Code: code})
		if fault.IsPermanent(err) != permanent {
			t.Errorf("%s: permanent = %v, want %v", code, !permanent, permanent)
		}
	}
	if fault.IsPermanent(classifyPG(errors.New("connection reset by peer"))) {
		t.Error("an unknown error is permanent")
	}
}
