package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

var clientSubs = []subcommand{
	{"create", "--name NAME [--job-types a,b]", "create a client; prints its API key and signing secret, shown only this once", clientsCreate},
	{"list", "[--limit N] [--cursor C]", "list clients", clientsList},
	{"show", "CLIENT_ID", "show a client and its keys", clientsShow},
	{"rotate-secret", "CLIENT_ID", "give a client a new signing secret (the old one still signs for BOOMERANG_SECRET_GRACE)", clientsRotate},
	{"add-key", "CLIENT_ID", "give a client another API key, shown only this once", clientsAddKey},
	{"revoke-key", "CLIENT_ID KEY_ID", "revoke one of a client's API keys at once", clientsRevokeKey},
	{"disable", "CLIENT_ID", "disable a client: its keys stop working", clientsDisable},
}

var clientFlags = map[string]func(*flag.FlagSet){
	"create": func(fs *flag.FlagSet) {
		fs.String("name", "", "the client's `name`")
		fs.String("job-types", "", "comma-separated job `types` the client may submit (default: all)")
	},
	"list": pageFlags,
}

func pageFlags(fs *flag.FlagSet) {
	fs.Int("limit", 0, "at most `N` rows (default: the server's, 50)")
	fs.String("cursor", "", "continue after the page that printed this `cursor`")
}

func clientsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "clients", clientSubs, clientFlags, args, getenv, stdout, stderr)
}

func clientsCreate(ctx context.Context, a *adminRun) error {
	if len(a.positional) > 0 {
		return fmt.Errorf("unexpected argument %q", a.positional[0])
	}
	name := a.flag("name")
	if name == "" {
		return fmt.Errorf("--name is required")
	}
	var types []string
	if t := a.flag("job-types"); t != "" {
		types = strings.Split(t, ",")
	}
	c, err := a.client.CreateClient(ctx, name, types...)
	if err != nil {
		return err
	}
	return a.print(c, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "created client %s (%s)\n\n", c.ID, c.Name)
		fmt.Fprintf(w, "  export BOOMERANG_API_KEY=%s\n  export SIGNING_SECRET=%s\n\n", c.APIKey, c.SigningSecret)
		fmt.Fprintln(w, "The API key and the signing secret are shown only now: keep them.")
	})
}

func clientsList(ctx context.Context, a *adminRun) error {
	if len(a.positional) > 0 {
		return fmt.Errorf("unexpected argument %q", a.positional[0])
	}
	page, err := a.client.ListClients(ctx, a.flagInt("limit"), a.flag("cursor"))
	if err != nil {
		return err
	}
	return a.print(page, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "ID\tNAME\tCREATED\tJOB TYPES\tDISABLED")
		for _, c := range page.Data {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\n", c.ID, c.Name, when(&c.CreatedAt), dash(strings.Join(c.JobTypes, ",")), c.Disabled)
		}
		nextPage(a, page.NextCursor)
	})
}

// nextPage tells people how to get the next page (on stderr: stdout stays the table).
func nextPage(a *adminRun, cursor string) {
	if cursor != "" {
		fmt.Fprintf(a.stderr, "more: add --cursor %s\n", cursor)
	}
}

func clientsShow(ctx context.Context, a *adminRun) error {
	id, err := a.ids("CLIENT_ID")
	if err != nil {
		return err
	}
	c, err := a.client.GetClient(ctx, id[0])
	if err != nil {
		return err
	}
	return a.print(c, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "id\t%s\nname\t%s\ncreated\t%s\njob types\t%s\ndisabled\t%v\n\n", c.ID, c.Name, when(&c.CreatedAt),
			dash(strings.Join(c.JobTypes, ",")), c.Disabled)
		fmt.Fprintln(w, "KEY ID\tHINT\tCREATED")
		for _, k := range c.Keys {
			fmt.Fprintf(w, "%s\t%s…\t%s\n", k.ID, k.Hint, when(&k.CreatedAt))
		}
	})
}

func clientsRotate(ctx context.Context, a *adminRun) error {
	id, err := a.ids("CLIENT_ID")
	if err != nil {
		return err
	}
	s, err := a.client.RotateSecret(ctx, id[0])
	if err != nil {
		return err
	}
	return a.print(s, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "new signing secret of %s (shown only now):\n\n  export SIGNING_SECRET=%s\n\n", id[0], s.SigningSecret)
		fmt.Fprintf(w, "The previous secret signs too until %s: update the receivers by then.\n", when(&s.PreviousValidUntil))
	})
}

func clientsAddKey(ctx context.Context, a *adminRun) error {
	id, err := a.ids("CLIENT_ID")
	if err != nil {
		return err
	}
	k, err := a.client.AddKey(ctx, id[0])
	if err != nil {
		return err
	}
	return a.print(k, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "new key %s of %s (shown only now):\n\n  export BOOMERANG_API_KEY=%s\n", k.ID, id[0], k.APIKey)
	})
}

func clientsRevokeKey(ctx context.Context, a *adminRun) error {
	id, err := a.ids("CLIENT_ID", "KEY_ID")
	if err != nil {
		return err
	}
	if err := a.client.RevokeKey(ctx, id[0], id[1]); err != nil {
		return err
	}
	return a.print(map[string]any{"clientId": id[0], "keyId": id[1], "revoked": true}, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "revoked key %s of %s\n", id[1], id[0])
	})
}

func clientsDisable(ctx context.Context, a *adminRun) error {
	id, err := a.ids("CLIENT_ID")
	if err != nil {
		return err
	}
	if err := a.client.DisableClient(ctx, id[0]); err != nil {
		return err
	}
	return a.print(map[string]any{"clientId": id[0], "disabled": true}, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "disabled client %s: its keys no longer work\n", id[0])
	})
}
