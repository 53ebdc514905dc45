module github.com/boomerang-dev/boomerang

go 1.26
