package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weirhq/weir/internal/admin"
)

const dlqUsage = `usage: weir dlq COMMAND [flags] [ID...]

  list     [filters]                 list dead letters, oldest first
  show     ID                        one dead letter with its payload
  replay   ID... | --all | filters   run them again through their failed stage
  discard  ID... | --all | filters   remove them for good

filters: --type --client --endpoint --stage --reason --since --until (RFC 3339) --limit
admin:   --admin URL (default $WEIR_ADMIN_URL or http://127.0.0.1:8081)
         --token TOKEN (default $WEIR_ADMIN_TOKEN)
`

const endpointsUsage = `usage: weir endpoints COMMAND [flags] [NAME]

  list            health of every endpoint
  pause NAME      stop deliveries to NAME until resumed
  resume NAME     deliver to NAME again

admin:   --admin URL (default $WEIR_ADMIN_URL or http://127.0.0.1:8081)
         --token TOKEN (default $WEIR_ADMIN_TOKEN)
`

// adminClient calls the admin API.
type adminClient struct {
	base, token string
	http        *http.Client
}

func adminFlags(fs *flag.FlagSet) *adminClient {
	c := &adminClient{http: &http.Client{Timeout: 60 * time.Second}}
	def := os.Getenv("WEIR_ADMIN_URL")
	if def == "" {
		def = "http://127.0.0.1:8081"
	}
	fs.StringVar(&c.base, "admin", def, "admin API base URL")
	fs.StringVar(&c.token, "token", os.Getenv("WEIR_ADMIN_TOKEN"), "admin bearer token")
	return c
}

// call sends a request and decodes a JSON answer into out; a non-2xx answer is an error that
// carries the API's message.
func (c *adminClient) call(ctx context.Context, method, path string, q url.Values, out any) error {
	u := strings.TrimRight(c.base, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("admin API: %s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("admin API: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

type letterFilters struct {
	fields map[string]*string
	limit  *int
	all    *bool
}

func filterFlags(fs *flag.FlagSet) *letterFilters {
	f := &letterFilters{fields: map[string]*string{}}
	for _, name := range []string{"type", "client", "endpoint", "stage", "reason", "since", "until"} {
		f.fields[name] = fs.String(name, "", "only dead letters with this "+name)
	}
	f.fields["after"] = fs.String("after", "", "list the dead letters after this id (paging)")
	f.limit = fs.Int("limit", 0, "at most this many")
	f.all = fs.Bool("all", false, "replay or discard every dead letter (with no filter)")
	return f
}

func (f *letterFilters) query() url.Values {
	q := url.Values{}
	for name, v := range f.fields {
		if *v != "" {
			q.Set(name, *v)
		}
	}
	if *f.limit > 0 {
		q.Set("limit", fmt.Sprint(*f.limit))
	}
	if *f.all {
		q.Set("all", "true")
	}
	return q
}

func dlq(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return usageError{errors.New("dlq needs a command")}
	}
	cmd := args[0]
	fs := newFlags("dlq "+cmd, stderr)
	c := adminFlags(fs)
	f := filterFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ids := fs.Args()
	switch cmd {
	case "list":
		var page admin.ListPage
		if err := c.call(ctx, http.MethodGet, "/v1/admin/dead-letters", f.query(), &page); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, page)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTAGE\tENDPOINT\tCLIENT\tTYPE\tMESSAGE\tREASON\tATTEMPTS\tLAST ERROR AT\tERROR")
		for _, d := range page.DeadLetters {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Stage, dash(d.Endpoint), d.Client, d.Type, d.MessageID,
				d.Reason, d.Attempts, d.LastAt.Format(time.RFC3339), clip(d.Error, 60))
		}
		tw.Flush()
		if page.Next != "" {
			fmt.Fprintf(stdout, "more: weir dlq list --after %s ...\n", page.Next)
		}
		return nil
	case "show":
		if len(ids) != 1 {
			return usageError{errors.New("dlq show needs one ID")}
		}
		var l admin.Letter
		if err := c.call(ctx, http.MethodGet, "/v1/admin/dead-letters/"+url.PathEscape(ids[0]), nil, &l); err != nil {
			return err
		}
		return printJSON(stdout, l)
	case "replay", "discard":
		if len(ids) > 0 {
			for _, id := range ids {
				var err error
				if cmd == "replay" {
					err = c.call(ctx, http.MethodPost, "/v1/admin/dead-letters/"+url.PathEscape(id)+"/replay", nil, nil)
				} else {
					err = c.call(ctx, http.MethodDelete, "/v1/admin/dead-letters/"+url.PathEscape(id), nil, nil)
				}
				if err != nil {
					return fmt.Errorf("%s: %w", id, err)
				}
			}
			fmt.Fprintf(stdout, "%s %d dead letter(s)\n", pastTense(cmd), len(ids))
			return nil
		}
		var counts admin.Counts
		q := f.query()
		if len(q) == 0 {
			return usageError{fmt.Errorf("dlq %s needs IDs, filters, or --all", cmd)}
		}
		if err := c.call(ctx, http.MethodPost, "/v1/admin/dead-letters/"+cmd, q, &counts); err != nil {
			return err
		}
		n := 0
		if counts.Replayed != nil {
			n = *counts.Replayed
		} else if counts.Discarded != nil {
			n = *counts.Discarded
		}
		fmt.Fprintf(stdout, "%s %d dead letter(s)\n", pastTense(cmd), n)
		return nil
	default:
		fmt.Fprint(stderr, dlqUsage)
		return usageError{fmt.Errorf("unknown dlq command %q", cmd)}
	}
}

func endpoints(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, endpointsUsage)
		return usageError{errors.New("endpoints needs a command")}
	}
	cmd := args[0]
	fs := newFlags("endpoints "+cmd, stderr)
	c := adminFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch cmd {
	case "list":
		var out struct{ Endpoints []admin.EndpointHealth }
		if err := c.call(ctx, http.MethodGet, "/v1/admin/endpoints", nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENDPOINT\tSTATE\tFAILURES\tSINCE\tREASON / LAST ERROR")
		for _, e := range out.Endpoints {
			since, why := e.FailingSince, e.LastError
			if e.State == "paused" {
				since, why = e.PausedSince, e.PauseReason
			}
			s := "-"
			if !since.IsZero() {
				s = since.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", e.Name, e.State, e.Failures, s, dash(clip(why, 80)))
		}
		return tw.Flush()
	case "pause", "resume":
		if fs.NArg() != 1 {
			return usageError{fmt.Errorf("endpoints %s needs one endpoint name", cmd)}
		}
		var e admin.EndpointHealth
		if err := c.call(ctx, http.MethodPost, "/v1/admin/endpoints/"+url.PathEscape(fs.Arg(0))+"/"+cmd, nil, &e); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s\n", e.Name, e.State)
		return nil
	default:
		fmt.Fprint(stderr, endpointsUsage)
		return usageError{fmt.Errorf("unknown endpoints command %q", cmd)}
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func pastTense(cmd string) string {
	if cmd == "replay" {
		return "replayed"
	}
	return "discarded"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
