package token

import (
	"slices"

	"github.com/latchkey/latchkey/storage"
)

// EffectiveRoles expands direct role references through the composites of the
// realm's roles (all, as ListRoles returns them), transitively: a composite role
// brings the roles it names, and theirs. A cycle of composites ends where it comes
// back to a role already counted; a reference to a role that is not in all (deleted
// meanwhile) is ignored, and so are its composites. The result is sorted, realm
// roles by name and each client's roles by name, so tokens do not differ with the
// order of mappings; clients is nil when there are no client roles. all is only
// read: storecache shares it between callers.
func EffectiveRoles(all []storage.Role, direct []storage.RoleRef) (realm []string, clients map[string][]string) {
	if len(direct) == 0 {
		return nil, nil
	}
	byRef := make(map[storage.RoleRef]*storage.Role, len(all))
	for i := range all {
		byRef[all[i].Ref()] = &all[i]
	}
	seen := make(map[storage.RoleRef]bool, len(direct))
	queue := slices.Clone(direct)
	for len(queue) > 0 {
		ref := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		r, ok := byRef[ref]
		if !ok || seen[ref] {
			continue
		}
		seen[ref] = true
		if ref.ClientID == "" {
			realm = append(realm, ref.Name)
		} else {
			if clients == nil {
				clients = map[string][]string{}
			}
			clients[ref.ClientID] = append(clients[ref.ClientID], ref.Name)
		}
		queue = append(queue, r.Composites...)
	}
	slices.Sort(realm)
	for _, names := range clients {
		slices.Sort(names)
	}
	return realm, clients
}
