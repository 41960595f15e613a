package handlers

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/store"
)

type actionView struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	EventID   string         `json:"event_id"`
	Function  string         `json:"function"`
	Target    actions.Target `json:"target"`
	Params    map[string]any `json:"params"`
	Enabled   bool           `json:"enabled"`
	TTLS      int            `json:"ttl_s"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

func actionViewOf(a *store.Action) actionView {
	params, _ := actions.DecodeParams(a.Params)
	return actionView{
		ID: a.ID, Name: a.Name, EventID: a.EventID, Function: a.Function,
		Target: actions.Target{Type: a.TargetType, ID: a.TargetID}, Params: params,
		Enabled: a.Enabled, TTLS: a.TTLSeconds, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
}

func (a *api) createAction(c *gin.Context) {
	var in actions.ActionInput
	if err := bindJSON(c, &in, actionView{}); err != nil {
		respondError(c, a.Log, err)
		return
	}
	act := &store.Action{ID: actions.NewID()}
	if err := actions.BuildAction(c.Request.Context(), a.Store, in, act); err != nil {
		respondError(c, a.Log, err)
		return
	}
	if err := a.Store.CreateAction(c.Request.Context(), act); err != nil {
		respondError(c, a.Log, err)
		return
	}
	created(c, "/api/v1/actions/"+act.ID, actionViewOf(act))
}

func (a *api) listActions(c *gin.Context) {
	serveList(a, c, a.Store.Actions, actionViewOf)
}

func (a *api) getAction(c *gin.Context) {
	act, err := a.Store.Action(c.Request.Context(), c.Param("id"))
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.JSON(http.StatusOK, actionViewOf(act))
}

func (a *api) updateAction(c *gin.Context) {
	act, err := a.Store.Action(c.Request.Context(), c.Param("id"))
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	var in actions.ActionInput
	if err := bindJSON(c, &in, actionView{}); err != nil {
		respondError(c, a.Log, err)
		return
	}
	if err := actions.BuildAction(c.Request.Context(), a.Store, in, act); err != nil {
		respondError(c, a.Log, err)
		return
	}
	// Checked: made again over the action as it is when saved, so that an
	// enabled or ttl_s changed meanwhile and left out here is kept.
	err = a.Store.EditAction(c.Request.Context(), act.ID, func(act *store.Action) error {
		return actions.ApplyAction(in, act)
	})
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (a *api) deleteAction(c *gin.Context) {
	if err := a.Store.DeleteAction(c.Request.Context(), c.Param("id")); err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.Status(http.StatusNoContent)
}
