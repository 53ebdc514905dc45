package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/boomerang-dev/boomerang/apiclient"
)

var deliverySubs = []subcommand{
	{"list", "[--status S] [--client ID] [--since T] [--until T] [--limit N] [--cursor C]", "list deliveries, newest first", deliveriesList},
	{"show", "DELIVERY_ID", "show a delivery and its attempts", deliveriesShow},
	{"replay", "DELIVERY_ID | --status S --client ID --since T --until T | --all [--dry-run] [--progress]",
		"send a DELIVERED or FAILED delivery again; with a filter, every match (FAILED unless --status), in the background, followed to its end", deliveriesReplay},
	{"retry-now", "DELIVERY_ID | --client ID --since T --until T | --all [--dry-run]",
		"make a PENDING delivery's next attempt now (after its receiver is fixed); with a filter, every PENDING match", deliveriesRetryNow},
}

func filterFlags(fs *flag.FlagSet, withStatus bool) {
	if withStatus {
		fs.String("status", "", "only deliveries in this `status`: PENDING, DELIVERED or FAILED")
	}
	fs.String("client", "", "only deliveries of this client `ID`")
	fs.String("since", "", "only deliveries created at or after `T`: RFC 3339, or a duration ago such as 2h")
	fs.String("until", "", "only deliveries created before `T`: RFC 3339, or a duration ago")
}

func bulkFlags(fs *flag.FlagSet) {
	fs.Bool("all", false, "with no filter, take every delivery the command applies to")
	fs.Bool("dry-run", false, "only count the matches")
}

var deliveryFlags = map[string]func(*flag.FlagSet){
	"list": func(fs *flag.FlagSet) { filterFlags(fs, true); pageFlags(fs) },
	"replay": func(fs *flag.FlagSet) {
		filterFlags(fs, true)
		bulkFlags(fs)
		fs.Bool("progress", false, "draw a progress bar on stderr even when it is not a terminal")
		fs.Bool("no-wait", false, "start a bulk replay and return, without following it")
	},
	"retry-now": func(fs *flag.FlagSet) { filterFlags(fs, false); bulkFlags(fs) },
}

func deliveriesCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "deliveries", deliverySubs, deliveryFlags, args, getenv, stdout, stderr)
}

// filter reads the filter flags; set says whether any was given.
func (a *adminRun) filter() (f apiclient.DeliveryFilter, set bool, err error) {
	now := time.Now()
	if a.fs.Lookup("status") != nil {
		f.Status = strings.ToUpper(a.flag("status"))
	}
	f.ClientID = a.flag("client")
	if f.Since, err = parseWhen("since", a.flag("since"), now); err != nil {
		return f, false, err
	}
	if f.Until, err = parseWhen("until", a.flag("until"), now); err != nil {
		return f, false, err
	}
	return f, f.Status != "" || f.ClientID != "" || !f.Since.IsZero() || !f.Until.IsZero(), nil
}

func deliveriesList(ctx context.Context, a *adminRun) error {
	if len(a.positional) > 0 {
		return fmt.Errorf("unexpected argument %q", a.positional[0])
	}
	f, _, err := a.filter()
	if err != nil {
		return err
	}
	page, err := a.client.ListDeliveries(ctx, f, a.flagInt("limit"), a.flag("cursor"))
	if err != nil {
		return err
	}
	return a.print(page, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "ID\tSTATUS\tATTEMPTS\tLAST CODE\tNEXT ATTEMPT\tCLIENT\tCREATED\tURL")
		for _, d := range page.Data {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Status, d.Attempts, code(d.LastStatusCode),
				when(d.NextAttemptAt), d.ClientID, when(&d.CreatedAt), d.URL)
		}
		nextPage(a, page.NextCursor)
	})
}

func code(c int) string {
	if c == 0 {
		return "-"
	}
	return fmt.Sprint(c)
}

func deliveriesShow(ctx context.Context, a *adminRun) error {
	id, err := a.ids("DELIVERY_ID")
	if err != nil {
		return err
	}
	d, err := a.client.GetDelivery(ctx, id[0])
	if err != nil {
		return err
	}
	if *a.jsonOut {
		return printJSON(a.stdout, d.Raw)
	}
	return a.print(d, func(w *tabwriter.Writer) { deliveryTable(w, d) })
}

// deliveryTable shows a delivery and its attempt log.
func deliveryTable(w io.Writer, d apiclient.DeliveryDetail) {
	fmt.Fprintf(w, "id\t%s\nstatus\t%s\nclient\t%s\njob\t%s\nevent\t%s\nurl\t%s\nattempts\t%d\nnext attempt\t%s\ncreated\t%s\ndelivered\t%s\n",
		d.ID, d.Status, d.ClientID, d.RequestID, d.EventType, d.URL, d.Delivery.Attempts, when(d.NextAttemptAt), when(&d.CreatedAt), when(d.DeliveredAt))
	if d.DeferredReason != "" {
		fmt.Fprintf(w, "deferred\t%s until %s\n", d.DeferredReason, when(d.DeferredUntil))
	}
	fmt.Fprintln(w, "\n#\tSTARTED\tMS\tCODE\tOUTCOME\tERROR")
	for _, at := range d.Attempts {
		errText := at.Error
		if at.ErrorClass != "" {
			errText = at.ErrorClass + ": " + errText
		}
		fmt.Fprintf(w, "%d\t%s\t%d\t%s\t%s\t%s\n", at.Number, when(&at.StartedAt), at.DurationMs, code(at.StatusCode), at.Outcome, dash(errText))
	}
}

// oneOrBulk says whether a replay or retry-now names one delivery (its id)
// or a filter, and refuses both at once and neither.
func (a *adminRun) oneOrBulk() (id string, f apiclient.DeliveryFilter, err error) {
	f, set, err := a.filter()
	if err != nil {
		return "", f, err
	}
	switch {
	case len(a.positional) > 1:
		return "", f, fmt.Errorf("want one DELIVERY_ID, got %d arguments", len(a.positional))
	case len(a.positional) == 1 && (set || a.flagBool("all")):
		return "", f, fmt.Errorf("give a DELIVERY_ID or filter flags, not both")
	case len(a.positional) == 1 && a.flagBool("dry-run"):
		return "", f, fmt.Errorf("--dry-run counts the matches of a filter: it does not apply to one DELIVERY_ID")
	case len(a.positional) == 1:
		return a.positional[0], f, nil
	case !set && !a.flagBool("all"):
		return "", f, errNeedFilter
	}
	return "", f, nil
}

func deliveriesReplay(ctx context.Context, a *adminRun) error {
	id, f, err := a.oneOrBulk()
	if err != nil {
		return err
	}
	if id != "" {
		d, err := a.client.Replay(ctx, id)
		if err != nil {
			return err
		}
		return a.print(d, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "replaying %s: %s, attempt %d is due now\n", d.ID, d.Status, d.Attempts+1)
		})
	}
	r, err := a.client.StartBulkReplay(ctx, f, a.flagBool("dry-run"))
	if err != nil {
		return err
	}
	if !r.Done() && !a.flagBool("no-wait") {
		bar := a.flagBool("progress") || isTerminal(a.stderr, a.getenv)
		if r, err = followReplay(ctx, a.client, r, a.stderr, bar, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return a.print(r, func(w *tabwriter.Writer) { replayTable(w, r) })
}

func deliveriesRetryNow(ctx context.Context, a *adminRun) error {
	id, f, err := a.oneOrBulk()
	if err != nil {
		return err
	}
	if id != "" {
		d, err := a.client.RetryNow(ctx, id)
		if err != nil {
			return err
		}
		if *a.jsonOut {
			return printJSON(a.stdout, d.Raw)
		}
		return a.print(d, func(w *tabwriter.Writer) { deliveryTable(w, d) })
	}
	r, err := a.client.RetryNowAll(ctx, f, a.flagBool("dry-run"))
	if err != nil {
		return err
	}
	return a.print(r, func(w *tabwriter.Writer) {
		if r.DryRun {
			fmt.Fprintf(w, "dry run: %d PENDING deliveries match; nothing was retried\n", r.Matched)
			return
		}
		fmt.Fprintf(w, "matched\t%d\nretried now\t%d\nskipped\t%d (attempted or gone meanwhile)\n", r.Matched, r.Retried, r.Skipped)
	})
}

func replayTable(w io.Writer, r apiclient.BulkReplay) {
	fmt.Fprintf(w, "replay\t%s\nstate\t%s\ndry run\t%v\nmatched\t%d\nreplayed\t%d\nskipped\t%d\ncreated\t%s\nfinished\t%s\n",
		r.ID, r.State, r.DryRun, r.Matched, r.Replayed, r.Skipped, when(&r.CreatedAt), when(r.FinishedAt))
	if r.Error != "" {
		fmt.Fprintf(w, "error\t%s\n", r.Error)
	}
}

var replaySubs = []subcommand{
	{"show", "REPLAY_ID [--wait] [--progress]", "show a bulk replay's progress; --wait follows it to its end", replaysShow},
}

var replayFlags = map[string]func(*flag.FlagSet){
	"show": func(fs *flag.FlagSet) {
		fs.Bool("wait", false, "follow the replay until it ends")
		fs.Bool("progress", false, "draw a progress bar on stderr even when it is not a terminal")
	},
}

func replaysCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "replays", replaySubs, replayFlags, args, getenv, stdout, stderr)
}

func replaysShow(ctx context.Context, a *adminRun) error {
	id, err := a.ids("REPLAY_ID")
	if err != nil {
		return err
	}
	r, err := a.client.GetReplay(ctx, id[0])
	if err != nil {
		return err
	}
	if a.flagBool("wait") && !r.Done() {
		bar := a.flagBool("progress") || isTerminal(a.stderr, a.getenv)
		if r, err = followReplay(ctx, a.client, r, a.stderr, bar, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return a.print(r, func(w *tabwriter.Writer) { replayTable(w, r) })
}

// followReplay polls a bulk replay until it ends, showing its progress on
// w: a bar redrawn in place when bar is set (a terminal, or --progress),
// else a plain line whenever the counts change.
func followReplay(ctx context.Context, c *apiclient.Client, r apiclient.BulkReplay, w io.Writer, bar bool, every time.Duration) (apiclient.BulkReplay, error) {
	last := ""
	show := func(r apiclient.BulkReplay) {
		line := progressLine(r, bar)
		if line == last {
			return
		}
		last = line
		if bar {
			fmt.Fprint(w, "\r"+line)
		} else {
			fmt.Fprintln(w, line)
		}
	}
	show(r)
	t := time.NewTicker(every)
	defer t.Stop()
	for !r.Done() {
		select {
		case <-ctx.Done():
			if bar {
				fmt.Fprintln(w)
			}
			return r, ctx.Err()
		case <-t.C:
		}
		next, err := c.GetReplay(ctx, r.ID)
		if err != nil {
			if bar {
				fmt.Fprintln(w)
			}
			return r, err
		}
		r = next
		show(r)
	}
	if bar {
		fmt.Fprintln(w)
	}
	return r, nil
}

// progressLine is "[#####.....]  50% 500/1000 replayed, 0 skipped" with a
// bar, or the counts alone.
func progressLine(r apiclient.BulkReplay, bar bool) string {
	done := r.Replayed + r.Skipped
	counts := fmt.Sprintf("%d/%d replayed, %d skipped (%s)", r.Replayed, r.Matched, r.Skipped, r.State)
	if !bar {
		return "replay " + r.ID + ": " + counts
	}
	const width = 30
	frac := 1.0
	if r.Matched > 0 {
		frac = min(1, float64(done)/float64(r.Matched))
	}
	n := int(frac * width)
	return fmt.Sprintf("[%s%s] %3.0f%% %s", strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, counts)
}
