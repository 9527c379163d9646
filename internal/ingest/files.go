package ingest

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
)

// FileResult is the outcome of one uploaded file.
type FileResult struct {
	File string `json:"file"`
	Outcome
}

// FilesResult answers POST /v1/files.
type FilesResult struct {
	Accepted int          `json:"accepted"`
	Rejected int          `json:"rejected"`
	Results  []FileResult `json:"results"`
}

const maxFiles = 1000

// handleFiles takes multipart/form-data with the fields client_id, token and message_type, and
// one or more files (XML of one of the type's dialects, or JSON by their Content-Type or a .json
// name): the path for partners that can only upload files. The credentials must come before the
// first file (or in an Authorization header): a stranger's upload is refused at its first file.
// Each file is a message with its own result; the whole upload is bounded by the body limit.
func (g *Gateway) handleFiles(w http.ResponseWriter, r *http.Request) {
	ct, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" || params["boundary"] == "" {
		writeProblem(w, problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"send multipart/form-data with the fields client_id, token, message_type and one or more files"))
		return
	}
	if r.ContentLength > g.cfg.MaxBody {
		writeProblem(w, tooLarge(g.cfg.MaxBody))
		return
	}
	mr := multipart.NewReader(http.MaxBytesReader(w, r.Body, g.cfg.MaxBody), params["boundary"])
	fields := map[string]string{}
	var c *Client // authenticated by the fields before the first file, or by the Authorization header
	if r.Header.Get("Authorization") != "" {
		var p *Problem
		if c, p = g.authenticate(r); p != nil {
			writeProblem(w, p)
			return
		}
	}
	type upload struct {
		name, ctype string
		body        []byte
	}
	var files []upload
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			writeProblem(w, g.unreadable(err))
			return
		}
		if part.FileName() != "" && c == nil {
			// The credentials come before the files: a stranger's file is not even read.
			var p *Problem
			if c, p = g.check(fields["client_id"], fields["token"]); p != nil {
				writeProblem(w, p)
				return
			}
		}
		b, err := io.ReadAll(part)
		if err != nil {
			writeProblem(w, g.unreadable(err))
			return
		}
		if part.FileName() == "" {
			fields[part.FormName()] = strings.TrimSpace(string(b))
			continue
		}
		if len(files) == maxFiles {
			writeProblem(w, problem(http.StatusRequestEntityTooLarge, "too-many-files", "Too many files",
				fmt.Sprintf("at most %d files per upload", maxFiles)))
			return
		}
		files = append(files, upload{name: part.FileName(), ctype: part.Header.Get("Content-Type"), body: b})
	}
	if c == nil {
		var p *Problem
		if c, p = g.check(fields["client_id"], fields["token"]); p != nil {
			writeProblem(w, p)
			return
		}
	}
	name := fields["message_type"]
	t := g.types[name]
	if t == nil || !c.Types[name] {
		writeProblem(w, problem(http.StatusForbidden, "type-not-allowed", "Message type not allowed",
			fmt.Sprintf("client %q may not send message type %q", c.ID, name)))
		return
	}
	if len(files) == 0 {
		writeProblem(w, problem(http.StatusBadRequest, "no-file", "No file", "the upload holds no file part"))
		return
	}
	if p := limit(c, len(files)); p != nil {
		writeProblem(w, p)
		return
	}
	x := t.dialect(c)
	cands := make([]candidate, len(files))
	var ok []*candidate
	for i, f := range files {
		mt, _, _ := mime.ParseMediaType(f.ctype)
		switch {
		case mt == "application/json" || strings.HasSuffix(strings.ToLower(f.name), ".json"):
			cands[i] = g.prepare(c, t, f.body, "", g.stamp())
		case x != nil:
			cands[i] = g.prepareXML(c, t, x, f.body, "", g.stamp())
		default:
			cands[i].prob = problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
				fmt.Sprintf("message type %q takes no XML from client %q; upload JSON files (Content-Type application/json)", t.Name, c.ID))
		}
		if cands[i].prob == nil {
			ok = append(ok, &cands[i])
		}
	}
	if len(ok) > 0 {
		if p := g.commit(r.Context(), ok); p != nil {
			writeProblem(w, p)
			return
		}
	}
	outs, accepted, rejected, status := outcomes(cands)
	res := FilesResult{Accepted: accepted, Rejected: rejected, Results: make([]FileResult, len(files))}
	for i, o := range outs {
		res.Results[i] = FileResult{File: files[i].name, Outcome: o}
	}
	writeJSON(w, status, res)
}

func (g *Gateway) unreadable(err error) *Problem {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return tooLarge(g.cfg.MaxBody)
	}
	return problem(http.StatusBadRequest, "unreadable-body", "Unreadable body", err.Error())
}
