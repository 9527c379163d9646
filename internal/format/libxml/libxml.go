//go:build cgo

package libxml

/*
#cgo pkg-config: libxml-2.0 libxslt libexslt
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlschemas.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <libxslt/xslt.h>
#include <libxslt/xsltInternals.h>
#include <libxslt/transform.h>
#include <libxslt/xsltutils.h>
#include <libxslt/security.h>
#include <libexslt/exslt.h>
#include <libxslt/extensions.h>

#define WEIR_MAX_ERRS 32
#define WEIR_MSG 240

// weir_errs collects the errors of one call. One call runs on one thread from start to end, so
// the collector of the running call is a thread-local (weir_cur), which the handlers use.
typedef struct {
	int n;
	int more;          // errors beyond WEIR_MAX_ERRS
	int refused;       // a DTD or an external resource was refused
	int line[WEIR_MAX_ERRS];
	int col[WEIR_MAX_ERRS];
	char msg[WEIR_MAX_ERRS][WEIR_MSG];
} weir_errs;

static __thread weir_errs *weir_cur;
// The directory a trusted compile (schema, stylesheet from the config) may read below; NULL at
// run time, when nothing at all may be loaded.
static __thread const char *weir_trusted;

static void weir_add(int line, int col, const char *text) {
	weir_errs *E = weir_cur;
	if (E == NULL || text == NULL) return;
	if (E->n >= WEIR_MAX_ERRS) { E->more++; return; }
	// Continuation of a multi-part generic message: append to the previous one.
	snprintf(E->msg[E->n], WEIR_MSG, "%s", text);
	size_t l = strlen(E->msg[E->n]);
	while (l > 0 && (E->msg[E->n][l-1] == '\n' || E->msg[E->n][l-1] == ' ')) E->msg[E->n][--l] = 0;
	if (l == 0) return;
	E->line[E->n] = line;
	E->col[E->n] = col;
	E->n++;
}

static void weir_serror(void *data, xmlErrorPtr e) {
	(void)data;
	if (e == NULL || e->level == XML_ERR_WARNING) return;
	int col = e->domain == XML_FROM_PARSER || e->domain == XML_FROM_NAMESPACE ? e->int2 : 0;
	weir_add(e->line, col, e->message);
}

static __thread int weir_open; // the last generic message did not end its line yet

static void weir_gerror(void *data, const char *fmt, ...) {
	(void)data;
	char buf[WEIR_MSG];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	weir_errs *E = weir_cur;
	size_t l = strlen(buf);
	if (E != NULL && weir_open && E->n > 0 && E->n <= WEIR_MAX_ERRS) {
		char *m = E->msg[E->n - 1];
		size_t ml = strlen(m);
		snprintf(m + ml, WEIR_MSG - ml, "%s", buf);
		ml = strlen(m);
		while (ml > 0 && (m[ml-1] == '\n' || m[ml-1] == ' ')) m[--ml] = 0;
	} else {
		weir_add(0, 0, buf);
	}
	weir_open = l > 0 && buf[l-1] != '\n';
}

static void weir_begin(weir_errs *E) {
	weir_cur = E;
	weir_open = 0;
	xmlSetStructuredErrorFunc(NULL, weir_serror);
	xmlSetGenericErrorFunc(NULL, weir_gerror);
	xsltSetGenericErrorFunc(NULL, weir_gerror);
}

static void weir_end(void) {
	weir_cur = NULL;
}

static xmlExternalEntityLoader weir_default_loader;

// weir_loader refuses every external resource, except files below the trusted directory while a
// schema or stylesheet from the config is compiled.
static xmlParserInputPtr weir_loader(const char *URL, const char *ID, xmlParserCtxtPtr ctxt) {
	if (weir_trusted != NULL && URL != NULL) {
		const char *path = URL;
		if (strncmp(path, "file://", 7) == 0) path += 7;
		char resolved[PATH_MAX];
		if (strstr(path, "://") == NULL && realpath(path, resolved) != NULL) {
			size_t n = strlen(weir_trusted);
			if (strncmp(resolved, weir_trusted, n) == 0 && (resolved[n] == '/' || resolved[n] == 0)) {
				return weir_default_loader(resolved, ID, ctxt);
			}
		}
	}
	char buf[WEIR_MSG];
	snprintf(buf, sizeof buf, "loading %s is not allowed", URL ? URL : "(null)");
	weir_add(0, 0, buf);
	if (weir_cur) weir_cur->refused = 1;
	return NULL;
}

static xsltSecurityPrefsPtr weir_prefs;

// weir:json-string(s) (namespace https://weir.dev/xslt) returns s as a quoted JSON string, for
// stylesheets that write JSON: one native call instead of a chain of str:replace.
static void weir_json_string(xmlXPathParserContextPtr ctxt, int nargs) {
	if (nargs != 1) { xmlXPathSetArityError(ctxt); return; }
	xmlChar *s = xmlXPathPopString(ctxt);
	if (ctxt->error != XPATH_EXPRESSION_OK) { if (s) xmlFree(s); return; }
	if (s == NULL) { xmlXPathSetError(ctxt, XPATH_MEMORY_ERROR); return; }
	size_t n = (size_t)xmlStrlen(s);
	xmlChar *out = xmlMalloc(n * 6 + 3);
	if (out == NULL) { xmlFree(s); xmlXPathSetError(ctxt, XPATH_MEMORY_ERROR); return; }
	static const char hex[] = "0123456789abcdef";
	size_t j = 0;
	out[j++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		switch (c) {
		case '"': out[j++] = '\\'; out[j++] = '"'; break;
		case '\\': out[j++] = '\\'; out[j++] = '\\'; break;
		case '\n': out[j++] = '\\'; out[j++] = 'n'; break;
		case '\r': out[j++] = '\\'; out[j++] = 'r'; break;
		case '\t': out[j++] = '\\'; out[j++] = 't'; break;
		default:
			if (c < 0x20) {
				out[j++] = '\\'; out[j++] = 'u'; out[j++] = '0'; out[j++] = '0';
				out[j++] = hex[c >> 4]; out[j++] = hex[c & 15];
			} else {
				out[j++] = c;
			}
		}
	}
	out[j++] = '"';
	out[j] = 0;
	xmlFree(s);
	valuePush(ctxt, xmlXPathWrapString(out));
}

static int weir_init(void) {
	xmlInitParser();
	exsltRegisterAll();
	xsltRegisterExtModuleFunction((const xmlChar *)"json-string", (const xmlChar *)"https://weir.dev/xslt", weir_json_string);
	weir_default_loader = xmlGetExternalEntityLoader();
	xmlSetExternalEntityLoader(weir_loader);
	weir_prefs = xsltNewSecurityPrefs();
	if (weir_prefs == NULL) return -1;
	xsltSetSecurityPrefs(weir_prefs, XSLT_SECPREF_READ_FILE, xsltSecurityForbid);
	xsltSetSecurityPrefs(weir_prefs, XSLT_SECPREF_WRITE_FILE, xsltSecurityForbid);
	xsltSetSecurityPrefs(weir_prefs, XSLT_SECPREF_CREATE_DIRECTORY, xsltSecurityForbid);
	xsltSetSecurityPrefs(weir_prefs, XSLT_SECPREF_READ_NETWORK, xsltSecurityForbid);
	xsltSetSecurityPrefs(weir_prefs, XSLT_SECPREF_WRITE_NETWORK, xsltSecurityForbid);
	return 0;
}

// A DOCTYPE stops the parse before its internal subset is read: no entity is ever declared.
static void weir_no_dtd(void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys) {
	(void)name; (void)ext; (void)sys;
	xmlParserCtxtPtr ctxt = (xmlParserCtxtPtr)ctx;
	weir_add(ctxt->input ? ctxt->input->line : 0, ctxt->input ? ctxt->input->col : 0,
		"DOCTYPE declarations are not allowed");
	if (weir_cur) weir_cur->refused = 1;
	xmlStopParser(ctxt);
}

static xmlDocPtr weir_parse(const char *buf, int len, weir_errs *E) {
	weir_begin(E);
	xmlDocPtr doc = NULL;
	xmlParserCtxtPtr ctxt = xmlCreateMemoryParserCtxt(buf, len);
	if (ctxt == NULL) {
		weir_add(0, 0, "cannot create a parser");
		weir_end();
		return NULL;
	}
	xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOCDATA);
	ctxt->linenumbers = 1;
	ctxt->sax->internalSubset = weir_no_dtd;
	ctxt->sax->externalSubset = NULL;
	xmlParseDocument(ctxt);
	doc = ctxt->myDoc;
	ctxt->myDoc = NULL;
	if (!ctxt->wellFormed || E->refused || E->n > 0) {
		if (E->n == 0) weir_add(0, 0, "the document is not well-formed");
		if (doc) xmlFreeDoc(doc);
		doc = NULL;
	}
	xmlFreeParserCtxt(ctxt);
	weir_end();
	return doc;
}

// weir_read_config_file parses a schema or stylesheet file like a partner document — a DOCTYPE
// stops the parse — but with its path as base, for includes below its directory.
static xmlDocPtr weir_read_config_file(const char *path, weir_errs *E) {
	xmlParserCtxtPtr ctxt = xmlCreateFileParserCtxt(path);
	if (ctxt == NULL) {
		if (E->n == 0) weir_add(0, 0, "cannot read the file");
		return NULL;
	}
	xmlCtxtUseOptions(ctxt, XML_PARSE_NONET);
	ctxt->linenumbers = 1;
	ctxt->sax->internalSubset = weir_no_dtd;
	ctxt->sax->externalSubset = NULL;
	xmlParseDocument(ctxt);
	xmlDocPtr doc = ctxt->myDoc;
	ctxt->myDoc = NULL;
	if (!ctxt->wellFormed || E->refused) {
		if (E->n == 0) weir_add(0, 0, "the file is not well-formed XML");
		if (doc) xmlFreeDoc(doc);
		doc = NULL;
	}
	xmlFreeParserCtxt(ctxt);
	return doc;
}

// weir_compile_schema compiles the XSD at path; *doc receives its document, which must outlive
// the schema (a schema parsed from a document may point into it).
static xmlSchemaPtr weir_compile_schema(const char *path, const char *dir, xmlDocPtr *doc, weir_errs *E) {
	weir_begin(E);
	weir_trusted = dir;
	xmlSchemaPtr s = NULL;
	*doc = weir_read_config_file(path, E);
	if (*doc != NULL) {
		xmlSchemaParserCtxtPtr p = xmlSchemaNewDocParserCtxt(*doc);
		if (p != NULL) {
			xmlSchemaSetParserStructuredErrors(p, weir_serror, NULL);
			s = xmlSchemaParse(p);
			xmlSchemaFreeParserCtxt(p);
		}
		if (s == NULL) {
			xmlFreeDoc(*doc);
			*doc = NULL;
		}
	}
	weir_trusted = NULL;
	weir_end();
	return s;
}

static int weir_validate(xmlSchemaPtr s, xmlDocPtr d, weir_errs *E) {
	weir_begin(E);
	int rc = -1;
	xmlSchemaValidCtxtPtr v = xmlSchemaNewValidCtxt(s);
	if (v != NULL) {
		xmlSchemaSetValidStructuredErrors(v, weir_serror, NULL);
		rc = xmlSchemaValidateDoc(v, d);
		xmlSchemaFreeValidCtxt(v);
	}
	weir_end();
	return rc;
}

static xsltStylesheetPtr weir_compile_xslt(const char *path, const char *dir, weir_errs *E) {
	weir_begin(E);
	weir_trusted = dir;
	xsltStylesheetPtr st = NULL;
	xmlDocPtr doc = weir_read_config_file(path, E);
	if (doc != NULL) {
		st = xsltParseStylesheetDoc(doc);
		if (st == NULL) xmlFreeDoc(doc);
		else if (st->errors > 0) { xsltFreeStylesheet(st); st = NULL; }
	}
	weir_trusted = NULL;
	weir_end();
	return st;
}

static void weir_xslt_error(void *data, const char *fmt, ...) {
	(void)data;
	char buf[WEIR_MSG];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	weir_gerror(NULL, "%s", buf);
}

static xsltTransformContextPtr weir_new_transform(xsltStylesheetPtr st, xmlDocPtr d, unsigned long ops) {
	xsltTransformContextPtr c = xsltNewTransformContext(st, d);
	if (c == NULL) return NULL;
	xsltSetCtxtSecurityPrefs(weir_prefs, c);
	xsltSetTransformErrorFunc(c, NULL, weir_xslt_error);
	if (c->xpathCtxt != NULL) c->xpathCtxt->opLimit = ops;
	c->maxTemplateDepth = 1000;
	return c;
}

// weir_stop asks a running transform to stop; libxslt checks the state between instructions.
static void weir_stop(xsltTransformContextPtr c) { c->state = XSLT_STATE_STOPPED; }

static xmlChar *weir_transform(xsltStylesheetPtr st, xmlDocPtr d, xsltTransformContextPtr c,
		int maxout, int *outlen, int *stopped, weir_errs *E) {
	weir_begin(E);
	xmlChar *out = NULL;
	*outlen = 0;
	xmlDocPtr res = xsltApplyStylesheetUser(st, d, NULL, NULL, NULL, c);
	*stopped = c->state == XSLT_STATE_STOPPED;
	if (res != NULL && c->state == XSLT_STATE_OK) {
		if (xsltSaveResultToString(&out, outlen, res, st) != 0) {
			weir_add(0, 0, "cannot serialize the result");
			out = NULL;
		} else if (*outlen > maxout) {
			xmlFree(out);
			out = NULL;
			weir_add(0, 0, "the result is larger than the output limit");
		}
	} else if (E->n == 0) {
		weir_add(0, 0, "the transform failed");
	}
	if (res != NULL) xmlFreeDoc(res);
	weir_end();
	return out;
}

static void weir_free_transform(xsltTransformContextPtr c) { xsltFreeTransformContext(c); }

static xmlChar *weir_xpath_string(xmlDocPtr d, const char *expr, unsigned long ops, weir_errs *E) {
	weir_begin(E);
	xmlChar *out = NULL;
	xmlXPathContextPtr x = xmlXPathNewContext(d);
	if (x != NULL) {
		x->opLimit = ops;
		// The prefixes the document's root element declares can be used in the expression.
		xmlNodePtr root = xmlDocGetRootElement(d);
		for (xmlNsPtr ns = root ? root->nsDef : NULL; ns != NULL; ns = ns->next) {
			if (ns->prefix != NULL && ns->href != NULL) xmlXPathRegisterNs(x, ns->prefix, ns->href);
		}
		char *wrapped = malloc(strlen(expr) + 10);
		sprintf(wrapped, "string(%s)", expr);
		xmlXPathObjectPtr r = xmlXPathEvalExpression((const xmlChar *)wrapped, x);
		free(wrapped);
		if (r != NULL) {
			if (r->type == XPATH_STRING && r->stringval != NULL) out = xmlStrdup(r->stringval);
			xmlXPathFreeObject(r);
		}
		xmlXPathFreeContext(x);
	}
	weir_end();
	return out;
}

static int weir_xpath_compiles(const char *expr, weir_errs *E) {
	weir_begin(E);
	xmlXPathCompExprPtr c = xmlXPathCompile((const xmlChar *)expr);
	int ok = c != NULL;
	if (c) xmlXPathFreeCompExpr(c);
	weir_end();
	return ok;
}

static void weir_free_doc(xmlDocPtr d) { xmlFreeDoc(d); }
static void weir_free_schema(xmlSchemaPtr s, xmlDocPtr d) { xmlSchemaFree(s); xmlFreeDoc(d); }
static void weir_free_xslt(xsltStylesheetPtr s) { xsltFreeStylesheet(s); }
static void weir_free(void *p) { xmlFree(p); }
*/
import "C"

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

var initErr = func() error {
	if C.weir_init() != 0 {
		return fmt.Errorf("libxml: cannot initialize libxslt security preferences")
	}
	return nil
}()

// Available reports whether XML is supported in this build.
func Available() bool { return initErr == nil }

func problems(e *C.weir_errs) []Problem {
	n := int(e.n)
	out := make([]Problem, 0, n+1)
	for i := range n {
		out = append(out, Problem{Line: int(e.line[i]), Column: int(e.col[i]), Message: C.GoString(&e.msg[i][0])})
	}
	if e.more > 0 {
		out = append(out, Problem{Message: fmt.Sprintf("and %d more errors", int(e.more))})
	}
	return out
}

func newErrs() *C.weir_errs {
	return (*C.weir_errs)(C.calloc(1, C.size_t(unsafe.Sizeof(C.weir_errs{}))))
}

// Doc is a parsed document. Free it when done; a Doc is used by one goroutine at a time.
type Doc struct {
	p       C.xmlDocPtr
	cleanup runtime.Cleanup
}

// Parse parses a partner document: well-formed XML without any DOCTYPE, nesting at most 256
// deep, nothing loaded from outside.
func Parse(data []byte) (*Doc, error) {
	if initErr != nil {
		return nil, initErr
	}
	if len(data) == 0 {
		return nil, &Error{Op: "parse", Problems: []Problem{{Message: "the document is empty"}}}
	}
	if len(data) > 1<<30 {
		return nil, &Error{Op: "parse", Problems: []Problem{{Message: "the document is too large"}}}
	}
	e := newErrs()
	defer C.free(unsafe.Pointer(e))
	p := C.weir_parse((*C.char)(unsafe.Pointer(&data[0])), C.int(len(data)), e)
	runtime.KeepAlive(data)
	if p == nil {
		return nil, &Error{Op: "parse", Problems: problems(e)}
	}
	d := &Doc{p: p}
	d.cleanup = runtime.AddCleanup(d, func(p C.xmlDocPtr) { C.weir_free_doc(p) }, p)
	return d, nil
}

// Free releases the document.
func (d *Doc) Free() {
	if d == nil || d.p == nil {
		return
	}
	d.cleanup.Stop()
	C.weir_free_doc(d.p)
	d.p = nil
}

// Schema is a compiled XSD, safe for concurrent use.
type Schema struct{ p C.xmlSchemaPtr }

// CompileSchema compiles the XSD at path. It may include or import schemas below its own
// directory, and nothing else.
func CompileSchema(path string) (*Schema, error) {
	var p C.xmlSchemaPtr
	var doc C.xmlDocPtr
	err := compile(path, "the schema does not compile", func(cpath, cdir *C.char, e *C.weir_errs) bool {
		p = C.weir_compile_schema(cpath, cdir, &doc, e)
		return p != nil
	})
	if err != nil {
		return nil, err
	}
	s := &Schema{p: p}
	type owned struct {
		s C.xmlSchemaPtr
		d C.xmlDocPtr
	}
	runtime.AddCleanup(s, func(o owned) { C.weir_free_schema(o.s, o.d) }, owned{p, doc})
	return s, nil
}

// compile runs the trusted compile of a file from the config: do gets the file's resolved path,
// its directory (the only place the compile may load from) and the error collector, and reports
// whether it succeeded.
func compile(path, failed string, do func(cpath, cdir *C.char, e *C.weir_errs) bool) error {
	if initErr != nil {
		return initErr
	}
	abs, dir, err := trusted(path)
	if err != nil {
		return err
	}
	cpath, cdir := C.CString(abs), C.CString(dir)
	defer C.free(unsafe.Pointer(cpath))
	defer C.free(unsafe.Pointer(cdir))
	e := newErrs()
	defer C.free(unsafe.Pointer(e))
	if !do(cpath, cdir, e) {
		return errorOf("compile", e, failed)
	}
	return nil
}

// errorOf is the Error of a failed call with the problems it collected, or fallback when it
// collected none.
func errorOf(op string, e *C.weir_errs, fallback string) *Error {
	ps := problems(e)
	if len(ps) == 0 {
		ps = []Problem{{Message: fallback}}
	}
	return &Error{Op: op, Problems: ps}
}

func trusted(path string) (abs, dir string, err error) {
	abs, err = filepath.Abs(path)
	if err != nil {
		return "", "", err
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return "", "", err
	}
	return abs, filepath.Dir(abs), nil
}

// Validate checks d against the schema; the error lists each violation with its line.
func (s *Schema) Validate(d *Doc) error {
	e := newErrs()
	defer C.free(unsafe.Pointer(e))
	rc := C.weir_validate(s.p, d.p, e)
	runtime.KeepAlive(s)
	runtime.KeepAlive(d)
	if rc != 0 {
		return errorOf("validate", e, "the document is not valid")
	}
	return nil
}

// Stylesheet is a compiled XSLT 1.0 stylesheet (with EXSLT), safe for concurrent use.
type Stylesheet struct {
	p      C.xsltStylesheetPtr
	limits Limits
}

// CompileStylesheet compiles the stylesheet at path. It may include or import stylesheets below
// its own directory, and nothing else; at run time it may load nothing at all.
func CompileStylesheet(path string, limits Limits) (*Stylesheet, error) {
	limits.defaults()
	var p C.xsltStylesheetPtr
	err := compile(path, "the stylesheet does not compile", func(cpath, cdir *C.char, e *C.weir_errs) bool {
		p = C.weir_compile_xslt(cpath, cdir, e)
		return p != nil
	})
	if err != nil {
		return nil, err
	}
	st := &Stylesheet{p: p, limits: limits}
	runtime.AddCleanup(st, func(p C.xsltStylesheetPtr) { C.weir_free_xslt(p) }, p)
	return st, nil
}

// watchdog stops transforms that run past their deadline. One goroutine checks the running
// transforms every watchPeriod, which is cheaper than a timer per transform.
var watchdog = &watcher{jobs: map[*watchJob]struct{}{}}

const watchPeriod = 20 * time.Millisecond

type watchJob struct {
	c        C.xsltTransformContextPtr
	deadline time.Time
	fired    bool
}

type watcher struct {
	mu      sync.Mutex
	jobs    map[*watchJob]struct{}
	running bool
}

func (w *watcher) add(c C.xsltTransformContextPtr, timeout time.Duration) *watchJob {
	j := &watchJob{c: c, deadline: time.Now().Add(timeout)}
	w.mu.Lock()
	w.jobs[j] = struct{}{}
	if !w.running {
		w.running = true
		go w.run()
	}
	w.mu.Unlock()
	return j
}

// remove unregisters j and reports whether the watchdog stopped it.
func (w *watcher) remove(j *watchJob) bool {
	w.mu.Lock()
	delete(w.jobs, j)
	w.mu.Unlock()
	return j.fired
}

func (w *watcher) run() {
	t := time.NewTicker(watchPeriod)
	defer t.Stop()
	for now := range t.C {
		w.mu.Lock()
		if len(w.jobs) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		for j := range w.jobs {
			if !j.fired && now.After(j.deadline) {
				j.fired = true
				C.weir_stop(j.c) // under mu: remove has not returned, so c is not freed yet
			}
		}
		w.mu.Unlock()
	}
}

// Transform applies the stylesheet to d and returns the serialized result (as the stylesheet's
// xsl:output says: XML, or text such as JSON). It stops the transform when it runs longer than
// the limits' Timeout.
func (st *Stylesheet) Transform(d *Doc) ([]byte, error) {
	l := st.limits
	c := C.weir_new_transform(st.p, d.p, C.ulong(l.MaxXPathOps))
	if c == nil {
		return nil, &Error{Op: "transform", Problems: []Problem{{Message: "cannot create a transform context"}}}
	}
	job := watchdog.add(c, l.Timeout)
	e := newErrs()
	defer C.free(unsafe.Pointer(e))
	var outlen, stopped C.int
	out := C.weir_transform(st.p, d.p, c, C.int(l.MaxOutput), &outlen, &stopped, e)
	fired := watchdog.remove(job) // from here the watchdog leaves c alone, so it can be freed
	C.weir_free_transform(c)
	runtime.KeepAlive(st)
	runtime.KeepAlive(d)
	if out == nil {
		ps := problems(e)
		if stopped != 0 && fired {
			ps = append([]Problem{{Message: fmt.Sprintf("the transform ran longer than its limit of %s", l.Timeout)}}, ps...)
		}
		return nil, &Error{Op: "transform", Problems: ps}
	}
	defer C.weir_free(unsafe.Pointer(out))
	return C.GoBytes(unsafe.Pointer(out), outlen), nil
}

// XPathString evaluates string(expr) on d. The expression may use the namespace prefixes
// declared on the document's root element.
func (d *Doc) XPathString(expr string, maxOps uint64) (string, error) {
	if maxOps == 0 {
		maxOps = 1_000_000
	}
	cexpr := C.CString(expr)
	defer C.free(unsafe.Pointer(cexpr))
	e := newErrs()
	defer C.free(unsafe.Pointer(e))
	out := C.weir_xpath_string(d.p, cexpr, C.ulong(maxOps), e)
	runtime.KeepAlive(d)
	if out == nil {
		return "", errorOf("xpath", e, fmt.Sprintf("XPath %s did not give a string", expr))
	}
	defer C.weir_free(unsafe.Pointer(out))
	return C.GoString((*C.char)(unsafe.Pointer(out))), nil
}

// CheckXPath reports whether expr compiles.
func CheckXPath(expr string) error {
	if initErr != nil {
		return initErr
	}
	cexpr := C.CString(expr)
	defer C.free(unsafe.Pointer(cexpr))
	e := newErrs()
	defer C.free(unsafe.Pointer(e))
	if C.weir_xpath_compiles(cexpr, e) == 0 {
		return errorOf("xpath", e, fmt.Sprintf("XPath %s does not compile", expr))
	}
	return nil
}
