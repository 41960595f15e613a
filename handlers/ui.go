package handlers

import "github.com/gin-gonic/gin"

// registerUI adds the admin web UI's routes.
func registerUI(r *gin.Engine, d Deps) {}
